"""Index the actor display snapshot (case-insensitive) for the audit list's actor filter.

Events of actors that are not users (or no longer are) can only be found by the
display snapshot; UPPER() matches what ``actor_display__iexact`` compiles to.
"""

import django.db.models.functions.text
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CONCURRENTLY: a plain CREATE INDEX would block every audited change while it builds.
    atomic = False

    dependencies = [
        ("audit", "0002_append_only"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                models.F("tenant"),
                django.db.models.functions.text.Upper("actor_display"),
                models.OrderBy(models.F("occurred_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="audit_tenant_actordisp_time",
            ),
        ),
    ]
