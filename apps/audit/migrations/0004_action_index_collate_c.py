"""Rebuild the action index in byte order (COLLATE "C") so action prefixes are index ranges.

Built and dropped CONCURRENTLY: a plain CREATE INDEX would block inserts into the
audit table, i.e. every audited change, for as long as the build takes.
"""

import django.db.models.functions.comparison
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("audit", "0003_actor_display_index")]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                models.F("tenant"),
                django.db.models.functions.comparison.Collate("action", "C"),
                models.OrderBy(models.F("occurred_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="audit_tenant_action_c_time",
            ),
        ),
        RemoveIndexConcurrently(model_name="auditevent", name="audit_tenant_action_time"),
    ]
