from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("optimizer", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="optimizationrun",
            name="advisor_status",
            field=models.CharField(
                choices=[
                    ("not_requested", "Not requested"),
                    ("pending", "Pending"),
                    ("accepted", "Accepted (feasible and not worse)"),
                    ("rejected", "Rejected (infeasible or worse)"),
                    ("no_proposal", "Narrative only, no proposal"),
                    ("unavailable", "Unavailable (no key, timeout, error or unparsable reply)"),
                ],
                default="not_requested",
                max_length=14,
            ),
        ),
        migrations.AddField(
            model_name="optimizationrun",
            name="advisor_model",
            field=models.CharField(blank=True, max_length=80),
        ),
        migrations.AddField(
            model_name="optimizationrun",
            name="advisor_narrative",
            field=models.TextField(blank=True, help_text="Claude's account of the plan."),
        ),
        migrations.AddField(
            model_name="optimizationrun",
            name="advisor_proposal",
            field=models.JSONField(blank=True, default=dict, help_text="Adjustments Claude proposed."),
        ),
        migrations.AddField(
            model_name="optimizationrun",
            name="advisor_verdict",
            field=models.TextField(blank=True, help_text="Why the proposal was applied or not."),
        ),
        migrations.AddField(
            model_name="optimizationrun",
            name="advised_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
