"""The permission contract of a tenant console page, written once (NetBox's ``ViewTestCases`` is the model).

A test module lists its pages as ``PageContract`` rows (URL name, the
permission the view declares, method, data, the status a holder gets) in a
class that mixes in ``PermissionContract``; the mixin generates, per page:

- the view sits behind ``tenant_view`` and declares exactly that permission;
- anonymous → sign-in; an outsider and a member of another tenant → 404;
- every member without the permission → 403 naming it, the denial in the
  decision log, nothing changed: the cast members whose role lacks it, and a
  member who holds every other permission of the catalog (so the page checks
  this one, not a neighbour);
- every member with it → the page's status, one test each (a holder's write
  must not change what the next one meets): the cast members whose role holds
  it, and a member who holds only it (so it is enough on its own);
- suspended tenant: a write is refused and changes nothing, a read still opens;
- object URLs: another tenant's object id → 404 for every holder, with the
  page's method; with the other method the same answer as an id that exists
  nowhere (404, or 405 where the view refuses the method first); nothing
  changes and the other tenant's name is not shown. An unknown or huge id → 404;
- with ``app_namespace`` set, every URL of the app has a contract, so a new view
  cannot join the app without one.

Who holds what comes from the permission catalog (``BASE_ROLE_PERMISSIONS``)
and the class's ``granted`` (what the module's world adds through bindings),
never from the decision code under test. "Nothing changes" compares
``state(world)`` before and after: by default the audit log (every write of a
security state is audited), extended by modules with the rows they guard.

For the next faces: ``granted`` covers elevations a world hands out
(break-glass); ``make_client`` and ``assert_sent_to_sign_in`` are the hooks a
face with another way in (the runtime API's bearer tokens: 401) overrides.

Use::

    class TestRolePagesContract(PermissionContract):
        app_namespace = "access"
        contracts = (
            PageContract("access:role_list", "role.manage"),
            PageContract("access:role_edit", "role.manage", kwargs={"role_id": Ref("custom")},
                         method="post", data={...}, ok_status=302, foreign=({"role_id": Ref("globex_role")},)),
        )

        @pytest.fixture
        def contract_world(self, world):  # what ``Ref`` paths resolve against (default: the cast)
            return world

        def state(self, world):  # what a refused request must leave as it was
            return (super().state(world), tuple(Role.objects.values_list(...)))
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, get_resolver, resolve, reverse

from apps.access import services as access_services
from apps.access.models import DeniedDecision
from apps.access.permissions import BASE_ROLE_PERMISSIONS, PERMISSIONS
from apps.audit.models import AuditEvent
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, UserFactory

CAST_ROLES = ("owner", "admin", "member", "viewer")  # the Acme members of tests/conftest.py, by base role
OUTSIDERS = ("outsider", "globex_owner")  # no membership in Acme / a member of Globex only
# The base role of the two members built for each page: the weakest, so the binding decides.
BASE_ROLE = Membership.Role.VIEWER
# Object ids no row has: zero, a large int, and one beyond bigint (must be 404, not a database error).
UNKNOWN_IDS = (0, 999_999_999, 99_999_999_999_999_999_999)
ONLY, ALL_BUT = "only-this-permission", "every-other-permission"
Method = Literal["get", "post"]


@dataclass(frozen=True)
class Ref:
    """An object of the module's ``contract_world`` by attribute path (``"rows.tool"``); its pk goes in the URL.

    ``template`` formats the pk for form values that name an object with a prefix (``"role:{}"``).
    """

    path: str
    template: str = "{}"

    def resolve(self, world: Any) -> Any:
        value = world
        for part in self.path.split("."):
            value = getattr(value, part)
        return value.pk if self.template == "{}" else self.template.format(value.pk)


def _resolved(values: Mapping[str, Any], world: Any) -> dict[str, Any]:
    return {key: value.resolve(world) if isinstance(value, Ref) else value for key, value in values.items()}


@dataclass(frozen=True)
class PageContract:
    """One console URL and the permission it declares.

    ``kwargs`` are the URL's arguments besides ``tenant_slug`` (``Ref`` for an
    object). ``foreign`` lists, for object URLs, kwargs overrides that point at
    another tenant's objects (one entry per attack). ``data`` is what a POST
    sends (``Ref`` values allowed). ``ok_status`` is what a holder gets;
    ``only_status`` what a member holding nothing but this permission gets, when
    the write needs more than the gate (e.g. handing out a permission).
    """

    url_name: str
    permission: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    method: Method = "get"
    data: Mapping[str, Any] = field(default_factory=dict)
    ok_status: int = 200
    only_status: int | None = None
    foreign: tuple[Mapping[str, Ref], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.url_name}:{self.method}"

    @property
    def writes(self) -> bool:
        return self.method == "post"

    @property
    def object_refs(self) -> list[str]:
        return [key for key, value in self.kwargs.items() if isinstance(value, Ref)]


def form_page(
    url_name: str,
    permission: str,
    *,
    data: Mapping[str, Any],
    ok_status: int = 302,
    only_status: int | None = None,
    **common: Any,
) -> tuple[PageContract, PageContract]:
    """The two contracts of a page that shows a form (GET → 200) and takes it (POST ``data`` → ``ok_status``)."""
    return (
        PageContract(url_name, permission, **common),
        PageContract(
            url_name, permission, method="post", data=data, ok_status=ok_status, only_status=only_status, **common
        ),
    )


def member_holding(tenant: Tenant, permissions: set[str] | frozenset[str], *, key: str) -> Any:
    """A new member of ``tenant`` (base role viewer) bound to a new role holding ``permissions``; returns the user.

    Built through the access services (``role_create``, ``binding_create``), as the console would.
    """
    user = UserFactory(email=f"{key}@{tenant.slug}.example")
    membership = MembershipFactory(tenant=tenant, user=user, role=BASE_ROLE)
    role = access_services.role_create(tenant=tenant, key=key, name=key, permissions=sorted(permissions))
    access_services.binding_create(role=role, membership=membership)
    return user


class PermissionContract:
    """Mixin: set ``contracts`` (and ``app_namespace`` to require one contract per URL of the app)."""

    contracts: ClassVar[tuple[PageContract, ...]] = ()
    # An app namespace whose every URL name must have a contract here: a new view cannot slip past.
    app_namespace: ClassVar[str | None] = None
    # Permissions the module's world gives cast members beyond their base role (through bindings).
    granted: ClassVar[Mapping[str, frozenset[str]]] = {}
    tenant_slug: ClassVar[str] = "acme"

    # --- hooks a module may override --------------------------------------------------------

    @pytest.fixture
    def contract_world(self, cast: Any) -> Any:
        """What ``Ref`` paths resolve against; override to add the module's objects."""
        return cast

    def make_client(self, user: Any = None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    def assert_sent_to_sign_in(self, response: HttpResponse) -> None:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def state(self, world: Any) -> Hashable:
        """What a refused request must leave as it was; extend with the rows the module guards."""
        return AuditEvent.objects.count()

    # --- plumbing ---------------------------------------------------------------------------

    def holds(self, who: str, permission: str) -> bool:
        return permission in BASE_ROLE_PERMISSIONS[who] | self.granted.get(who, frozenset())

    def url(self, contract: PageContract, world: Any, **overrides: Any) -> str:
        kwargs = {"tenant_slug": self.tenant_slug, **contract.kwargs, **overrides}
        return reverse(contract.url_name, kwargs=_resolved(kwargs, world))

    def send(self, client: Client, contract: PageContract, world: Any, *, method: str | None = None, **overrides: Any):
        method = method or contract.method
        return getattr(client, method)(self.url(contract, world, **overrides), _resolved(contract.data, world))

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "contract" not in metafunc.fixturenames:
            return
        name = metafunc.function.__name__
        cases: list[tuple[Any, ...]] = []
        ids: list[str] = []
        for contract in self.contracts:
            for case in self._cases(name, contract):
                cases.append((contract, *case))
                ids.append("-".join([contract.id, *map(str, case)]))
        if not cases:  # e.g. the object-id tests of a module without object URLs
            reason = f"no page of {type(self).__name__} calls for {name}"
            metafunc.parametrize("contract", [pytest.param(None, marks=pytest.mark.skip(reason=reason))])
        elif "who" in metafunc.fixturenames:
            metafunc.parametrize(("contract", "who"), cases, ids=ids)
        else:
            metafunc.parametrize("contract", [case[0] for case in cases], ids=ids)

    def _cases(self, test_name: str, contract: PageContract) -> Iterator[tuple[str, ...]]:
        if test_name == "test_a_member_with_the_permission_gets_the_page":
            # One test per holder: a holder's write must not change what the next one meets.
            yield from ((who,) for who in CAST_ROLES if self.holds(who, contract.permission))
            yield (ONLY,)
        elif test_name == "test_another_tenants_object_is_404":
            if contract.foreign:
                yield ()
        elif test_name == "test_an_unknown_object_id_is_404":
            if contract.object_refs:
                yield ()
        else:
            yield ()

    def lacking(self, contract: PageContract) -> list[str]:
        """Who must be refused: the cast members whose role lacks the permission, and one holding all else."""
        who = [role for role in CAST_ROLES if not self.holds(role, contract.permission)]
        # Every base role holds tenant.view: for such a permission no "all but" member exists.
        if contract.permission not in BASE_ROLE_PERMISSIONS[BASE_ROLE]:
            who.append(ALL_BUT)
        return who

    def _user(self, cast: Any, who: str, contract: PageContract) -> Any:
        if who == ONLY:
            return member_holding(cast.acme, {contract.permission}, key=ONLY)
        if who == ALL_BUT:
            return member_holding(cast.acme, set(PERMISSIONS) - {contract.permission}, key=ALL_BUT)
        return getattr(cast, who)

    # --- the contract -----------------------------------------------------------------------

    def test_every_page_of_the_app_has_a_contract(self) -> None:
        if self.app_namespace is None:
            pytest.skip("no app namespace declared")
        patterns = get_resolver().namespace_dict[self.app_namespace][1].url_patterns
        names = {f"{self.app_namespace}:{p.name}" for p in patterns if isinstance(p, URLPattern)}
        assert names, "the URL walk found no pages"
        assert names - {c.url_name for c in self.contracts} == set()

    def test_the_view_declares_the_permission(self, contract: PageContract) -> None:
        assert contract.permission in PERMISSIONS
        kwargs = {
            "tenant_slug": self.tenant_slug,
            **{k: 1 if isinstance(v, Ref) else v for k, v in contract.kwargs.items()},
        }
        view = resolve(reverse(contract.url_name, kwargs=kwargs)).func
        assert getattr(view, "tenant_entry", False), "not behind tenant_view"
        assert view.required_permission == contract.permission

    def test_strangers_are_sent_to_sign_in_or_get_404(
        self, contract: PageContract, cast: Any, contract_world: Any
    ) -> None:
        """Anonymous → sign-in; an outsider and a member of another tenant → 404 (existence not revealed)."""
        before = self.state(contract_world)
        self.assert_sent_to_sign_in(self.send(self.make_client(), contract, contract_world))
        for who in OUTSIDERS:
            assert self.send(self.make_client(getattr(cast, who)), contract, contract_world).status_code == 404, who
        assert self.state(contract_world) == before

    def test_a_member_without_the_permission_gets_403(
        self, contract: PageContract, cast: Any, contract_world: Any
    ) -> None:
        """403 naming the permission, the denial in the decision log, nothing changed (so one test serves all)."""
        refused = self.lacking(contract)
        if not refused:
            pytest.skip(f"every member holds {contract.permission}")
        for who in refused:
            user = self._user(cast, who, contract)
            before = self.state(contract_world)
            response = self.send(self.make_client(user), contract, contract_world)
            assert response.status_code == 403, f"{who} got {response.status_code}"
            assert contract.permission in response.content.decode(), who
            assert self.state(contract_world) == before, f"{who} changed something"
            membership = Membership.objects.for_tenant(cast.acme).get(user=user)
            assert (
                DeniedDecision.objects.for_tenant(cast.acme)
                .filter(subject_id=str(membership.pk), action=contract.permission)
                .exists()
            ), f"the denial for {who} is not in the decision log"

    def test_a_member_with_the_permission_gets_the_page(
        self, contract: PageContract, who: str, cast: Any, contract_world: Any
    ) -> None:
        expected = contract.only_status if who == ONLY and contract.only_status is not None else contract.ok_status
        response = self.send(self.make_client(self._user(cast, who, contract)), contract, contract_world)
        assert response.status_code == expected, f"{who} got {response.status_code}"

    def test_a_suspended_tenant_takes_no_write(self, contract: PageContract, cast: Any, contract_world: Any) -> None:
        cast.acme.status = Tenant.Status.SUSPENDED
        cast.acme.save(update_fields=["status"])
        before = self.state(contract_world)
        response = self.send(self.make_client(cast.owner), contract, contract_world)
        if contract.writes:
            assert response.status_code == 403
            assert self.state(contract_world) == before
        else:
            assert response.status_code == contract.ok_status  # reading stays open

    def test_another_tenants_object_is_404(self, contract: PageContract, cast: Any, contract_world: Any) -> None:
        """Every Acme member who may use the page, yet Globex's ids do not exist for them.

        With the page's own method the answer is 404. With the other method it is whatever an
        id that exists nowhere gets (404, or 405 where the view refuses the method first), so
        it tells nothing either.
        """
        other = "post" if contract.method == "get" else "get"
        nowhere_id = {contract.object_refs[0]: UNKNOWN_IDS[1]}
        before = self.state(contract_world)
        for who in (who for who in CAST_ROLES if self.holds(who, contract.permission)):
            client = self.make_client(getattr(cast, who))
            nowhere = self.send(client, contract, contract_world, method=other, **nowhere_id).status_code
            assert nowhere in (404, 405)
            for overrides in contract.foreign:
                response = self.send(client, contract, contract_world, **overrides)
                assert response.status_code == 404, (who, overrides)
                assert b"globex" not in response.content.lower()
                response = self.send(client, contract, contract_world, method=other, **overrides)
                assert response.status_code == nowhere, (who, other, overrides)
                assert b"globex" not in response.content.lower()
        assert self.state(contract_world) == before

    def test_an_unknown_object_id_is_404(self, contract: PageContract, cast: Any, contract_world: Any) -> None:
        client = self.make_client(cast.owner)
        for key in contract.object_refs:
            for ident in UNKNOWN_IDS:
                assert self.send(client, contract, contract_world, **{key: ident}).status_code == 404, (key, ident)
