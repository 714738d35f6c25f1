from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("environments", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="status_detail",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
