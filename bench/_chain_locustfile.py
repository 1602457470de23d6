"""Locust users for the bare chain (bench/floor.py): closed loop, one GET /page after another, with the
same HTTP client class as the shop's journeys. The leading _ keeps the bench harness from importing it
(and Locust's monkey-patching) into the bench process."""

from locust import FastHttpUser, constant, task


class PageUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def page(self) -> None:
        self.client.get("/page", name="/page")
