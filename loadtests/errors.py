"""The errors a load test reports to its user (message, no traceback)."""

from render.errors import ServingError


class LoadTestError(ServingError):
    """A load test could not run or could not be measured (not an SLO verdict)."""
