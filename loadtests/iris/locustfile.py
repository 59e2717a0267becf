"""Load test of the iris app: rows of sklearn's iris data set, every answer checked (see workload.py)."""

from locust import run_single_user

from loadtests.iris.workload import IrisWorkload
from loadtests.user import PredictUser
from render.spec.models import App


class IrisUser(PredictUser):
    @classmethod
    def workload_for(cls, app: App) -> IrisWorkload:
        return IrisWorkload()


if __name__ == "__main__":
    run_single_user(IrisUser)
