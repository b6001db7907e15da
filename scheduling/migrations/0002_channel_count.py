from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery


def count_channels(apps, schema_editor):
    ScheduledMessage = apps.get_model("scheduling", "ScheduledMessage")
    ChannelAttempt = apps.get_model("scheduling", "ChannelAttempt")
    counts = (ChannelAttempt.objects.filter(message=OuterRef("pk")).values("message")
              .annotate(n=Count("pk")).values("n"))
    ScheduledMessage.objects.filter(pk__in=ChannelAttempt.objects.values("message")).update(channel_count=Subquery(counts))


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="scheduledmessage",
            name="channel_count",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_channels, migrations.RunPython.noop),
    ]
