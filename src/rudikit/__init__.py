"""rudikit: the RUDI lifecycle (Rationale, Unification, Development, Implementation) for
policing risk and decision-support models."""

__version__ = "0.1.0"
