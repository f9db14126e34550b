"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

routes: list[tuple] = []
