"""The live order feed's Azure resources: Web PubSub service and hub, the app's role, its settings,
its event subscription, and the extension bundle that carries the bindings.

Issue 12: "Bicep: the Web PubSub service and hub (local auth off, identity-based connection from
the Function App, the least role that works), the app settings, and the new subscription; checkov
clean with every skip explained; the offline checks and the subscriptions-equivalence test cover
it." Evaluated offline with bicep_eval over pycep's parse tree, like test_subscriptions.py.

Run: target/iac-env/venv/bin/python -m unittest discover -s infra/tests -v
(ORDERGRID_INFRA_DIR points the tests at another copy of infra/, as test_mutations.py does.)
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_app_identity as ta  # noqa: E402
import test_subscriptions as ts  # noqa: E402
from bicep_eval import BicepFile, Opaque, ResourceRef, Scope, split_value  # noqa: E402

# The repository (host.json and the function folders), not ORDERGRID_INFRA_DIR's copy of infra/.
REPO = Path(__file__).resolve().parents[2]

WEB_PUBSUB = "Microsoft.SignalRService/webPubSub"
WEB_PUBSUB_HUB = "Microsoft.SignalRService/webPubSub/hubs"
# Newest stable API version: the stable/ folders of
# specification/webpubsub/resource-manager/Microsoft.SignalRService in Azure/azure-rest-api-specs
# are 2021-10-01, 2023-02-01 and 2024-03-01 (later versions are previews).
WEB_PUBSUB_API = "2024-03-01"

# Names fixed by the issue 12 contract (function.json files and the handler use them).
HUB = "orders"
CONNECTION = "WebPubSubConnectionString"
FEED_SUBSCRIPTION = {
    "name": "order-status-feed",
    "destination": {
        "endpointType": "AzureFunction",
        "properties": {
            "functionName": "OrderStatusFeed",
            "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64,
            # The event's trace context, for the host (issue 13; test_telemetry.py).
            "deliveryAttributeMappings": [
                {"name": "traceparent", "type": "Dynamic", "properties": {"sourceField": "data.traceparent"}}
            ],
        },
    },
    "filter": {
        "includedEventTypes": [
            "NewOrder",
            "OrderAccepted",
            "OrderRejected",
            "OrderConfirmationSent",
            "OrderConfirmationFailed",
        ],
        "isSubjectCaseSensitive": False,
        "enableAdvancedFilteringOnArrays": True,
        "advancedFilters": [],
    },
    "eventDeliverySchema": "EventGridSchema",
    "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 60},
    "deadLetter": {"blobContainerName": "dead-letters"},
}

# The first extension bundle whose Microsoft.Azure.WebJobs.Extensions.WebPubSub (1.10.0) supports
# identity-based connections: tests/ExtensionBundle.Tests/TestData/any_any_extensions.deps.json in
# Azure/azure-functions-extension-bundles lists WebPubSub 1.9.0 at tag 4.32.0 and 1.10.0 at 4.33.0,
# and the extension's CHANGELOG says "1.10.0 (2026-01-19) ... Support identity-based connection".
MIN_BUNDLE_FOR_IDENTITY = (4, 33, 0)


def _main(infra: Path, params: dict[str, Any] | None = None) -> tuple[BicepFile, Scope]:
    main = BicepFile.load(infra / "main.bicep")
    return main, Scope(main, {**ts.MAIN_PARAMS, **(params or {})})


def _web_pubsub(infra: Path, params: dict[str, Any] | None = None) -> tuple[Any, Scope, dict[str, Any]]:
    main, scope = _main(infra, params)
    el = ts._one(main.resources_of_type(WEB_PUBSUB), "Web PubSub service")
    return el, scope, {
        "type_api": el.type_api,
        "kind": ts._body(scope, el, "kind"),
        "sku": ts._body(scope, el, "sku"),
        "properties": ts._body(scope, el, "properties"),
        "ref": ResourceRef(scope, el),
    }


def assert_service_accepts_only_entra(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    el, _, wps = _web_pubsub(infra)
    _, condition, _ = split_value(el.value)
    test.assertIsNone(condition, "the Web PubSub service must always be deployed")
    test.assertEqual(wps["type_api"], f"{WEB_PUBSUB}@{WEB_PUBSUB_API}")
    test.assertEqual(wps["kind"], "WebPubSub")
    props = wps["properties"]
    test.assertIs(props.get("disableLocalAuth"), True, "access keys and connection strings must not work")
    test.assertIsNot(props.get("disableAadAuth"), True, "Entra ID is the only way in; it must stay enabled")
    test.assertEqual(props.get("publicNetworkAccess"), "Enabled", "browsers connect over the public endpoint")


def assert_sku_follows_the_parameter(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    main, _ = _main(infra)
    param = main.of_kind("param")["webPubSubSku"]
    _, scope = _main(infra)
    test.assertEqual(scope.lookup("webPubSubSku"), "Free_F1", "the default SKU")
    for sku in ("Free_F1", "Standard_S1", "Premium_P1"):
        _, _, wps = _web_pubsub(infra, {"webPubSubSku": sku})
        test.assertEqual(wps["sku"]["name"], sku)
    test.assertIn("deco_allowed", param.decorators, "webPubSubSku must list the SKUs it allows")


def assert_hub_denies_anonymous_clients(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    main, scope = _main(infra)
    hub = ts._one(main.resources_of_type(WEB_PUBSUB_HUB), "Web PubSub hub")
    test.assertEqual(hub.type_api, f"{WEB_PUBSUB_HUB}@{WEB_PUBSUB_API}")
    ref = ResourceRef(scope, hub)
    test.assertEqual(ref.name, HUB, "the hub the functions' bindings name")
    service = ResourceRef(scope, ts._one(main.resources_of_type(WEB_PUBSUB), "Web PubSub service"))
    test.assertEqual(ref.parent, service, "the hub must belong to the Web PubSub service of this template")
    props = ts._body(scope, hub, "properties")
    test.assertEqual(props.get("anonymousConnectPolicy"), "deny", "clients without a token must be refused")
    test.assertFalse(props.get("eventHandlers"), "no event handlers: nothing flows from clients to the app")
    test.assertFalse(props.get("eventListeners"), "no event listeners")


def assert_app_role_is_web_pubsub_service_owner_on_the_service(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    ra = ta.app_role_assignments(infra)[ta.ROLE_WEB_PUBSUB_SERVICE_OWNER]
    test.assertIs(ra["enabled"], True)
    scope = ra["scope"]
    test.assertIsInstance(scope, ResourceRef, "the role must be scoped to a resource of this template")
    test.assertEqual(scope.element.resource_type, WEB_PUBSUB, "scope: the Web PubSub service, not the group")
    test.assertFalse(scope.element.existing)
    _, _, wps = _web_pubsub(infra)
    test.assertEqual(scope, wps["ref"])
    props = ra["properties"]
    test.assertEqual(
        props["roleDefinitionId"],
        f"/subscriptions/00000000/providers/Microsoft.Authorization/roleDefinitions/{ta.ROLE_WEB_PUBSUB_SERVICE_OWNER}",
    )
    test.assertEqual(props["principalId"], ta.APP_PRINCIPAL)
    test.assertEqual(props["principalType"], "ServicePrincipal")


def assert_app_settings_connect_with_the_identity(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    r = ts.render(ts.real_file(), infra=infra)
    settings = r.app_settings
    service = ts._one(r.main.resources_of_type(WEB_PUBSUB), "Web PubSub service")
    host = Opaque(f"{service.name}.properties.hostName")
    test.assertEqual(settings.get(f"{CONNECTION}__serviceUri"), f"https://{host}")
    test.assertEqual(settings.get(f"{CONNECTION}__credential"), "managedidentity")
    test.assertNotIn(CONNECTION, settings, "no connection string: local auth is off and the handler refuses both forms")
    for name, value in settings.items():
        test.assertNotIn("AccessKey=", str(value), f"{name} must not carry a Web PubSub access key")
    test.assertEqual(r.outputs.get("webPubSubHostName"), host)
    # The settings are written only after the app's role on the service exists.
    main, scope = _main(infra)
    module = ts._one(
        [m for m in main.of_kind("module").values() if m.module_path == ts.APP_SETTINGS_MODULE], "settings module"
    )
    depends = ts._body(scope, module, "dependsOn") or []
    owner = next(
        el.name
        for el in main.resources_of_type("Microsoft.Authorization/roleAssignments")
        if ta.ROLE_WEB_PUBSUB_SERVICE_OWNER in str(ts._body(scope, el, "properties")["roleDefinitionId"])
    )
    test.assertIn(owner, [d.element.name for d in depends if isinstance(d, ResourceRef)])


def assert_operators_setting_follows_the_parameter(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    default = ts.render(ts.real_file(), infra=infra).app_settings
    test.assertEqual(default.get("ORDERGRID_OPERATORS"), "", "nobody is an operator unless the parameter says so")
    named = ts.render(ts.real_file(), infra=infra, main_params={"operators": "alice@contoso.com,bob@contoso.com"})
    test.assertEqual(named.app_settings.get("ORDERGRID_OPERATORS"), "alice@contoso.com,bob@contoso.com")


def assert_feed_subscription_is_created(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    doc = ts.real_file()
    orders = next(t for t in doc["topics"] if t["name"] == "orders")
    test.assertEqual(orders["subscriptions"][-1], FEED_SUBSCRIPTION, "the contract's block, last in the orders topic")
    r = ts.render(doc, infra=infra)
    rt = next(t for t in r.topics if t.file_topic["name"] == "orders")
    sub = next(s for s in rt.subscriptions if s.name == FEED_SUBSCRIPTION["name"])
    test.assertIs(sub.enabled, True)
    test.assertEqual(sub.parent, rt.topic)
    dest = sub.properties["destination"]
    test.assertEqual(dest["endpointType"], "AzureFunction")
    test.assertEqual(dest["properties"]["resourceId"], f"{r.function_app_id}/functions/OrderStatusFeed")
    test.assertEqual(sub.properties["filter"], FEED_SUBSCRIPTION["filter"])
    test.assertEqual(sub.properties["retryPolicy"], FEED_SUBSCRIPTION["retryPolicy"])
    dl = sub.properties["deadLetterWithResourceIdentity"]["deadLetterDestination"]["properties"]
    test.assertEqual(dl, {"resourceId": r.storage_id, "blobContainerName": "dead-letters"})
    off = ts.render(doc, deploy_subscriptions=False, infra=infra)
    rt_off = next(t for t in off.topics if t.file_topic["name"] == "orders")
    test.assertIs(next(s for s in rt_off.subscriptions if s.name == "order-status-feed").enabled, False)


def check_all(test: unittest.TestCase, infra: Path) -> None:
    """Every check of this file against `infra` (test_mutations.py runs them on edited copies)."""
    assert_service_accepts_only_entra(test, infra)
    assert_sku_follows_the_parameter(test, infra)
    assert_hub_denies_anonymous_clients(test, infra)
    assert_app_role_is_web_pubsub_service_owner_on_the_service(test, infra)
    assert_app_settings_connect_with_the_identity(test, infra)
    assert_operators_setting_follows_the_parameter(test, infra)
    assert_feed_subscription_is_created(test, infra)


def _bundle_range(text: str) -> tuple[tuple[int, ...], bool, tuple[int, ...], bool]:
    """A NuGet version range '[4.33.0, 5.0.0)' as (min, min inclusive, max, max inclusive)."""
    m = re.fullmatch(r"\s*([\[(])\s*([0-9.*]+)\s*,\s*([0-9.*]+)\s*([\])])\s*", text)
    if not m:
        raise AssertionError(f"extension bundle version {text!r} is not a [min, max) range")

    def parse(v: str) -> tuple[int, ...]:
        parts = [0 if p == "*" else int(p) for p in v.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))

    return parse(m[2]), m[1] == "[", parse(m[3]), m[4] == "]"


class WebPubSubService(unittest.TestCase):
    def test_local_auth_is_disabled_and_entra_is_the_only_way_in(self) -> None:
        assert_service_accepts_only_entra(self)

    def test_the_sku_is_a_parameter_defaulting_to_free(self) -> None:
        assert_sku_follows_the_parameter(self)

    def test_the_orders_hub_denies_anonymous_connections_and_has_no_event_handlers(self) -> None:
        assert_hub_denies_anonymous_clients(self)


class WebPubSubIdentity(unittest.TestCase):
    def test_the_app_is_web_pubsub_service_owner_on_the_service_only(self) -> None:
        assert_app_role_is_web_pubsub_service_owner_on_the_service(self)

    def test_the_app_settings_name_the_service_for_an_identity_connection(self) -> None:
        assert_app_settings_connect_with_the_identity(self)

    def test_operators_are_nobody_by_default_and_follow_the_parameter(self) -> None:
        assert_operators_setting_follows_the_parameter(self)

    def test_the_parameters_file_names_no_operator(self) -> None:
        text = (ts.INFRA / "main.bicepparam").read_text()
        self.assertRegex(text, r"(?m)^param operators = ''\s*$")
        self.assertRegex(text, r"(?m)^param webPubSubSku = 'Free_F1'\s*$")


class FeedSubscription(unittest.TestCase):
    def test_order_status_feed_is_the_last_orders_subscription_and_the_bicep_creates_it(self) -> None:
        assert_feed_subscription_is_created(self)


class FunctionsAndHost(unittest.TestCase):
    def test_the_extension_bundle_supports_identity_based_web_pubsub_connections(self) -> None:
        host = json.loads((REPO / "host.json").read_text())
        bundle = host["extensionBundle"]
        self.assertEqual(bundle["id"], "Microsoft.Azure.Functions.ExtensionBundle")
        lo, lo_incl, hi, hi_incl = _bundle_range(bundle["version"])
        self.assertTrue(lo_incl)
        self.assertGreaterEqual(lo, MIN_BUNDLE_FOR_IDENTITY, "an older bundle has no identity-based Web PubSub connection")
        self.assertEqual((hi, hi_incl), ((5, 0, 0), False), "stay on the v4 bundles")

    def test_every_web_pubsub_binding_names_the_hub_and_connection_the_bicep_provides(self) -> None:
        # Vacuous until the feed's function folders exist; then each must match the Bicep.
        settings = ts.render(ts.real_file()).app_settings
        for manifest in sorted(REPO.glob("*/function.json")):
            for b in json.loads(manifest.read_text()).get("bindings", []):
                if b.get("type", "").lower() not in ("webpubsub", "webpubsubconnection"):
                    continue
                where = f"{manifest.parent.name}: {b.get('type')} binding"
                self.assertEqual(b.get("hub"), HUB, where)
                connection = b.get("connection", CONNECTION)
                self.assertIn(f"{connection}__serviceUri", settings, where)


if __name__ == "__main__":
    unittest.main()
