"""Load test of the zero-shot app: the evaluation sentences and their labels, every answer checked (workload.py)."""

from locust import run_single_user

from loadtests.user import PredictUser
from loadtests.zero_shot.workload import ZeroShotWorkload
from render.spec.models import App


class ZeroShotUser(PredictUser):
    @classmethod
    def workload_for(cls, app: App) -> ZeroShotWorkload:
        return ZeroShotWorkload()


if __name__ == "__main__":
    run_single_user(ZeroShotUser)
