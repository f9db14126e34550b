"""API routes of grid programs, registered on the project's single router (energyarb.api_urls)."""

from .views import EnrollmentViewSet, GridEventViewSet, GridProgramViewSet

routes: list[tuple] = [
    ("grid/programs", GridProgramViewSet, "grid-program"),
    ("grid/enrollments", EnrollmentViewSet, "grid-enrollment"),
    ("grid/events", GridEventViewSet, "grid-event"),
]
