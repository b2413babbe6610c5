"""The dashboard served under ``/ui`` (see :mod:`rudikit.service.ui.routes`)."""
