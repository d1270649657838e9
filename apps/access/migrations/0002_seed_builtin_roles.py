"""Give every existing tenant its built-in roles (new tenants get them when provisioned)."""

from django.db import migrations


def seed(apps, schema_editor):
    from apps.access.permissions import BUILTIN_ROLES

    Tenant = apps.get_model("tenants", "Tenant")
    Role = apps.get_model("access", "Role")
    Group = apps.get_model("auth", "Group")
    for tenant in Tenant.objects.all():
        for builtin in BUILTIN_ROLES.values():
            if Role.objects.filter(tenant=tenant, key=builtin.key).exists():
                continue
            group, _ = Group.objects.get_or_create(name=f"tenant:{tenant.pk}:role:{builtin.key}")
            Role.objects.create(
                tenant=tenant,
                key=builtin.key,
                name=builtin.name,
                description=builtin.description,
                permissions=sorted(builtin.permissions),
                builtin=True,
                group=group,
            )


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial"), ("tenants", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
