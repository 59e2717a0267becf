"""Load test of the doubleit app: random numbers, every answer checked to be their exact doubles (workload.py)."""

from locust import run_single_user

from loadtests.doubleit.workload import DoubleItWorkload
from loadtests.user import PredictUser
from render.spec.models import App


class DoubleItUser(PredictUser):
    @classmethod
    def workload_for(cls, app: App) -> DoubleItWorkload:
        return DoubleItWorkload()


if __name__ == "__main__":
    run_single_user(DoubleItUser)
