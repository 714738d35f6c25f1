"""Chain verifications say whether they walked the whole chain or only the events after
the previous checkpoint, and from which event (issue 11 item 19)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        migrations.AddField(
            model_name="chainverification",
            name="mode",
            field=models.CharField(
                choices=[
                    ("full", "full walk from #1"),
                    ("incremental", "incremental from the last checkpoint"),
                ],
                default="full",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="chainverification",
            name="from_seq",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
