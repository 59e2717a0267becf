"""Load test of the tabular app: rows of sklearn's breast-cancer data set, every answer checked (workload.py)."""

from locust import run_single_user

from loadtests.tabular.workload import TabularWorkload
from loadtests.user import PredictUser
from render.spec.load import app_args
from render.spec.models import App


class TabularUser(PredictUser):
    @classmethod
    def workload_for(cls, app: App) -> TabularWorkload:
        # The app names its classes from its args (defaults resolved), so the check follows the spec.
        return TabularWorkload(app_args(app)["class_names"])


if __name__ == "__main__":
    run_single_user(TabularUser)
