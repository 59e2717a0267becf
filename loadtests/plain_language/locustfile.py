"""Load test of the plain-language app: clinical notes streamed back token by token and asked for whole, every
answer and every stream checked (workload.py), each stream's first token timed against slo.ttft_p95_ms."""

from locust import run_single_user

from loadtests.plain_language.workload import PlainLanguageWorkload
from loadtests.user import GenerateUser
from render.spec.models import App


class PlainLanguageUser(GenerateUser):
    @classmethod
    def workload_for(cls, app: App) -> PlainLanguageWorkload:
        return PlainLanguageWorkload()


if __name__ == "__main__":
    run_single_user(PlainLanguageUser)
