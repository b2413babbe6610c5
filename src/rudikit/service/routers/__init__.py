"""The service's endpoints, one APIRouter per resource; :func:`rudikit.service.app.create_app`
includes them."""
