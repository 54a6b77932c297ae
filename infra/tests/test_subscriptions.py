"""The event subscriptions the Bicep would create are exactly those in infra/subscriptions.json.

Issue 5: "a test that the subscriptions the Bicep would create are exactly those in the
subscriptions file, with the same filters and policies". There is no Bicep compiler offline, so
bicep_eval evaluates pycep's parse tree of main.bicep and modules/event-grid-topic.bicep: the
module loop over the file's topics, the parameters main passes to each module instance, and the
eventSubscriptions loop inside it. The result is compared with what the file says, translated by
an independent reading of the mapping (see expected_properties).

To catch values that are hard-coded but happen to equal today's file, the same comparison also
runs against edited copies of the file (VARIANTS); and test_mutations.py proves that edits which
drop or hard-code a property make these checks fail.

Run: target/iac-env/venv/bin/python -m unittest discover -s infra/tests -v
(ORDERGRID_INFRA_DIR points the tests at another copy of infra/, as test_mutations.py does.)
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bicep_eval import (  # noqa: E402
    BicepFile,
    Opaque,
    ResourceRef,
    Scope,
    _object_pair,
    split_value,
    strip_nulls,
)

INFRA = Path(os.environ.get("ORDERGRID_INFRA_DIR", Path(__file__).resolve().parents[1])).resolve()
TOPIC_MODULE = "modules/event-grid-topic.bicep"
APP_SETTINGS_MODULE = "modules/app-settings.bicep"
EVENTGRID_API = "2025-02-15"

# Keys of a subscription in the file, and what the Bicep turns them into.
MAPPED_KEYS = {"name", "destination", "filter", "eventDeliverySchema", "retryPolicy", "deadLetter"}

ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
ROLE_EVENTGRID_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"

# Required parameters of main.bicep that carry no meaning for subscriptions.
MAIN_PARAMS = {
    "emailFrom": "ordergrid <orders@example.com>",
    "smtpHost": "smtp.example.com",
    "smtpUsername": "orders@example.com",
}


def real_file() -> dict[str, Any]:
    return json.loads((INFRA / "subscriptions.json").read_text())


# --- edited copies of the file: every value changed, optional keys added and removed ----------


def _variants() -> dict[str, dict[str, Any]]:
    base = real_file()
    orders = base["topics"][0]
    assert orders["name"] == "orders"

    edited = copy.deepcopy(base)
    subs = edited["topics"][0]["subscriptions"]
    subs[0]["destination"]["properties"].update(
        {
            "functionName": "EmailNotifier",
            "maxEventsPerBatch": 7,
            "preferredBatchSizeInKilobytes": 512,
            "deliveryAttributeMappings": [
                {"name": "x-tenant", "type": "Static", "properties": {"value": "t1", "isSecret": False}}
            ],
        }
    )
    subs[0]["filter"] = {
        "includedEventTypes": ["NewOrder", "OrderCancelled"],
        "subjectBeginsWith": "/orders/eu/",
        "subjectEndsWith": ".json",
        "isSubjectCaseSensitive": True,
        "enableAdvancedFilteringOnArrays": False,
        "advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.value", "value": 100},
            {"operatorType": "StringIn", "key": "data.channel", "values": ["web", "app"]},
        ],
    }
    subs[0]["eventDeliverySchema"] = "CloudEventSchemaV1_0"
    subs[0]["retryPolicy"] = {"maxDeliveryAttempts": 5, "eventTimeToLiveInMinutes": 60}
    # Second subscription: no batch settings, no filter, no schema, no retry policy, no dead letters.
    subs[1]["destination"]["properties"] = {"functionName": "OrderProcessor"}
    for key in ("filter", "eventDeliverySchema", "retryPolicy", "deadLetter"):
        subs[1].pop(key, None)
    # Third: a WebHook destination (ARM shape, passed through) with dead-lettering off by null.
    subs.append(
        {
            "name": "audit-webhook",
            "destination": {
                "endpointType": "WebHook",
                "properties": {"endpointUrl": "https://audit.example.com/events", "maxEventsPerBatch": 10},
            },
            "filter": {"includedEventTypes": ["OrderAccepted"]},
            "retryPolicy": {"maxDeliveryAttempts": 3, "eventTimeToLiveInMinutes": 30},
            "deadLetter": None,
        }
    )

    # A second topic before `orders`: every topic gets its subscriptions, the orders index moves.
    two_topics = copy.deepcopy(base)
    audit_sub = copy.deepcopy(orders["subscriptions"][1])
    audit_sub["name"] = "audit-email"
    audit_sub["retryPolicy"] = {"maxDeliveryAttempts": 10, "eventTimeToLiveInMinutes": 120}
    two_topics["topics"].insert(
        0, {"name": "audit", "inputSchema": "CloudEventSchemaV1_0", "subscriptions": [audit_sub]}
    )

    return {"real file": base, "edited values": edited, "two topics": two_topics}


VARIANTS = _variants()


def _other_container() -> dict[str, Any]:
    doc = real_file()
    doc["topics"][0]["subscriptions"][0]["deadLetter"] = {"blobContainerName": "other-dead-letters"}
    return doc


# Mapping only: the topic identity may not write to this container (see
# test_a_dead_letter_container_the_topic_cannot_write_to_is_reported), but the subscription must
# still say what the file says.
MAPPING_VARIANTS = {**VARIANTS, "another dead-letter container": _other_container()}


# --- what the Bicep renders ---------------------------------------------------------------------


@dataclass
class RenderedSubscription:
    enabled: bool
    name: Any
    parent: Any
    properties: dict[str, Any]


@dataclass
class RenderedTopic:
    module_scope: Scope
    file_topic: dict[str, Any]
    params: dict[str, Any]
    topic: ResourceRef
    topic_properties: dict[str, Any]
    subscriptions: list[RenderedSubscription]
    dead_letter_writer: dict[str, Any]
    data_sender_enabled: bool
    data_sender: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Rendered:
    main: BicepFile
    scope: Scope
    topics: list[RenderedTopic]
    function_app_id: str
    storage_id: str
    containers: dict[str, str]  # name -> id
    app_settings: dict[str, Any]  # the `settings` main passes to modules/app-settings.bicep
    app_settings_params: dict[str, Any]  # every parameter main passes to that module
    outputs: dict[str, Any]


def _one(elements: list[Any], what: str) -> Any:
    assert len(elements) == 1, f"expected exactly one {what}, found {len(elements)}"
    return elements[0]


def _body(scope: Scope, element: Any, key: str) -> Any:
    _, _, body = split_value(element.value)
    node = _object_pair(body, key)
    return None if node is None else scope.eval(node)


def render(
    doc: dict[str, Any],
    deploy_subscriptions: bool = True,
    infra: Path = INFRA,
    main_params: dict[str, Any] | None = None,
) -> Rendered:
    """Evaluate main.bicep (and the topic module) for the subscriptions document `doc`."""
    subs_path = (infra / "subscriptions.json").resolve()
    loaded: list[Path] = []

    def load_json(path: Path) -> Any:
        loaded.append(path)
        if path == subs_path:
            return copy.deepcopy(doc)
        return json.loads(path.read_text())

    main = BicepFile.load(infra / "main.bicep")
    params = {**MAIN_PARAMS, "deploySubscriptions": deploy_subscriptions, **(main_params or {})}
    scope = Scope(main, params, load_json)

    function_app = ResourceRef(scope, _one(main.resources_of_type("Microsoft.Web/sites"), "Function App"))
    storage = ResourceRef(scope, _one(main.resources_of_type("Microsoft.Storage/storageAccounts"), "storage account"))
    containers = {}
    for el in main.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers"):
        ref = ResourceRef(scope, el)
        containers[ref.name] = ref.id

    module = _one(
        [m for m in main.of_kind("module").values() if m.module_path == TOPIC_MODULE], f"module {TOPIC_MODULE}"
    )
    loop, condition, body = split_value(module.value)
    assert loop is not None, f"module {module.name} must loop over the file's topics"
    assert condition is None, f"module {module.name} must not be conditional"
    topics = scope.eval(loop.iterable)
    assert subs_path in loaded, "main.bicep does not loadJsonContent('subscriptions.json')"
    assert topics == doc["topics"], "the topic module must loop over every topic of subscriptions.json, in order"

    module_file = BicepFile.load(infra / TOPIC_MODULE)
    rendered_topics = []
    for file_topic in topics:
        params = scope.with_bindings({loop.item: file_topic}).eval(_object_pair(body, "params"))
        mscope = Scope(module_file, params)

        topic_el = _one(module_file.resources_of_type("Microsoft.EventGrid/topics"), "Event Grid topic")
        assert topic_el.type_api.endswith("@" + EVENTGRID_API), topic_el.type_api
        topic = ResourceRef(mscope, topic_el)

        subs_el = _one(
            module_file.resources_of_type("Microsoft.EventGrid/topics/eventSubscriptions"), "eventSubscriptions resource"
        )
        assert subs_el.type_api.endswith("@" + EVENTGRID_API), subs_el.type_api
        sloop, scond, sbody = split_value(subs_el.value)
        assert sloop is not None, "eventSubscriptions must be a loop over the topic's subscriptions"
        rendered_subs = []
        for file_sub in mscope.eval(sloop.iterable):
            s = mscope.with_bindings({sloop.item: file_sub})
            rendered_subs.append(
                RenderedSubscription(
                    enabled=True if scond is None else s.eval(scond),
                    name=s.eval(_object_pair(sbody, "name")),
                    parent=s.eval(_object_pair(sbody, "parent")),
                    properties=strip_nulls(s.eval(_object_pair(sbody, "properties"))),
                )
            )

        role_assignments = module_file.resources_of_type("Microsoft.Authorization/roleAssignments")
        by_role: dict[str, Any] = {}
        for ra in role_assignments:
            props = _body(mscope, ra, "properties")
            _, cond, _ = split_value(ra.value)
            by_role[props["roleDefinitionId"].rsplit("/", 1)[1]] = {
                "scope": _body(mscope, ra, "scope"),
                "properties": props,
                "enabled": True if cond is None else mscope.eval(cond),
            }
        writer = by_role.get(ROLE_STORAGE_BLOB_DATA_CONTRIBUTOR)
        sender = by_role.get(ROLE_EVENTGRID_DATA_SENDER)
        assert writer is not None, "the topic identity has no Storage Blob Data Contributor assignment"
        assert sender is not None, "the module has no EventGrid Data Sender assignment"

        outputs = {n: mscope.eval(e.value) for n, e in module_file.of_kind("output").items()}
        rendered_topics.append(
            RenderedTopic(
                module_scope=mscope,
                file_topic=file_topic,
                params=params,
                topic=topic,
                topic_properties=_body(mscope, topic_el, "properties"),
                subscriptions=rendered_subs,
                dead_letter_writer=writer,
                data_sender_enabled=sender["enabled"],
                data_sender=sender,
                outputs=outputs,
            )
        )

    settings_module = _one(
        [m for m in main.of_kind("module").values() if m.module_path == APP_SETTINGS_MODULE],
        f"module {APP_SETTINGS_MODULE}",
    )
    settings_params = _body(scope, settings_module, "params")
    return Rendered(
        main=main,
        scope=scope,
        topics=rendered_topics,
        function_app_id=function_app.id,
        storage_id=storage.id,
        containers=containers,
        app_settings=settings_params["settings"],
        app_settings_params=settings_params,
        outputs={n: scope.eval(e.value) for n, e in main.of_kind("output").items()},
    )


# --- what the file says, read independently of the Bicep ------------------------------------


def expected_properties(sub: dict[str, Any], function_app_id: str, storage_id: str) -> dict[str, Any]:
    dest = sub["destination"]
    if dest["endpointType"] == "AzureFunction":
        props = dict(dest.get("properties") or {})
        function_name = props.pop("functionName")
        destination = {
            "endpointType": "AzureFunction",
            "properties": {"resourceId": f"{function_app_id}/functions/{function_name}", **props},
        }
    else:
        destination = dest  # already in ARM shape
    out: dict[str, Any] = {"destination": destination}
    for key in ("filter", "eventDeliverySchema", "retryPolicy"):
        if sub.get(key) is not None:
            out[key] = sub[key]
    container = (sub.get("deadLetter") or {}).get("blobContainerName")
    if container:
        out["deadLetterWithResourceIdentity"] = {
            "identity": {"type": "SystemAssigned"},
            "deadLetterDestination": {
                "endpointType": "StorageBlob",
                "properties": {"resourceId": storage_id, "blobContainerName": container},
            },
        }
    return strip_nulls(out)


def assert_subscriptions_match(test: unittest.TestCase, doc: dict[str, Any], infra: Path = INFRA) -> None:
    """The whole equivalence check, for one subscriptions document."""
    r = render(doc, infra=infra)
    test.assertEqual(len(r.topics), len(doc["topics"]))
    for rt, file_topic in zip(r.topics, doc["topics"]):
        where = f"topic {file_topic['name']}"
        test.assertEqual(rt.topic_properties.get("inputSchema"), file_topic.get("inputSchema", "EventGridSchema"), where)
        names = [s.name for s in rt.subscriptions]
        test.assertEqual(names, [s["name"] for s in file_topic["subscriptions"]], f"{where}: subscription names")
        for rs, fs in zip(rt.subscriptions, file_topic["subscriptions"]):
            w = f"{where}, subscription {fs['name']}"
            unmapped = set(fs) - MAPPED_KEYS
            test.assertFalse(unmapped, f"{w}: keys {sorted(unmapped)} are in the file but main.bicep does not map them")
            test.assertEqual(rs.parent, rt.topic, f"{w}: parent must be the topic")
            exp = expected_properties(fs, r.function_app_id, r.storage_id)
            got = rs.properties
            # Field by field first, for readable failures ...
            test.assertEqual(got.get("filter"), exp.get("filter"), f"{w}: filter")
            test.assertEqual(got.get("retryPolicy"), exp.get("retryPolicy"), f"{w}: retryPolicy")
            test.assertEqual(got.get("eventDeliverySchema"), exp.get("eventDeliverySchema"), f"{w}: eventDeliverySchema")
            gd, ed = got.get("destination", {}), exp["destination"]
            test.assertEqual(gd.get("endpointType"), ed["endpointType"], f"{w}: destination type")
            if ed["endpointType"] == "AzureFunction":
                fn = fs["destination"]["properties"]["functionName"]
                rid = gd.get("properties", {}).get("resourceId", "")
                test.assertTrue(rid.endswith(f"/functions/{fn}"), f"{w}: resourceId {rid!r} must end with /functions/{fn}")
                test.assertTrue(rid.startswith(r.function_app_id + "/"), f"{w}: resourceId {rid!r} must be in the Function App")
                for key in ("maxEventsPerBatch", "preferredBatchSizeInKilobytes", "deliveryAttributeMappings"):
                    test.assertEqual(gd["properties"].get(key), ed["properties"].get(key), f"{w}: destination {key}")
            exp_dl = exp.get("deadLetterWithResourceIdentity")
            got_dl = got.get("deadLetterWithResourceIdentity")
            test.assertEqual(got_dl is None, exp_dl is None, f"{w}: dead-lettering on/off")
            if exp_dl:
                test.assertEqual(
                    got_dl["deadLetterDestination"]["properties"].get("blobContainerName"),
                    exp_dl["deadLetterDestination"]["properties"]["blobContainerName"],
                    f"{w}: dead-letter container",
                )
            # ... then exactly: nothing missing, nothing extra.
            test.assertEqual(got, exp, f"{w}: the properties the Bicep sends")


def assert_dead_letters_granted(test: unittest.TestCase, doc: dict[str, Any], infra: Path = INFRA) -> None:
    """Each topic identity may write to its subscriptions' dead-letter container, and only there."""
    r = render(doc, infra=infra)
    for rt in r.topics:
        granted = rt.dead_letter_writer["scope"]
        where = f"topic {rt.file_topic['name']}"
        test.assertIsInstance(granted, ResourceRef, where)
        test.assertEqual(
            granted.element.resource_type,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            f"{where}: the topic identity's role must be scoped to the container, not the account",
        )
        test.assertIn(granted.name, r.containers, f"{where}: main.bicep must create the dead-letter container")
        test.assertEqual(granted.id, r.containers[granted.name], where)
        props = rt.dead_letter_writer["properties"]
        test.assertEqual(props["principalId"], Opaque("eventGridTopic.identity.principalId"), where)
        test.assertEqual(props["principalType"], "ServicePrincipal", where)
        for sub in rt.file_topic["subscriptions"]:
            container = (sub.get("deadLetter") or {}).get("blobContainerName")
            if container:
                test.assertEqual(
                    container,
                    granted.name,
                    f"{sub['name']} dead-letters to {container!r} but the topic may only write to {granted.name!r}",
                )


class SubscriptionsMatchTheFile(unittest.TestCase):
    def test_subscriptions_the_bicep_creates_are_exactly_those_in_the_file(self) -> None:
        doc = real_file()
        assert_subscriptions_match(self, doc)
        total = sum(len(t["subscriptions"]) for t in doc["topics"])
        self.assertGreater(total, 0, "subscriptions.json defines no subscription")

    def test_subscriptions_follow_edits_to_the_file(self) -> None:
        for label, doc in MAPPING_VARIANTS.items():
            with self.subTest(variant=label):
                assert_subscriptions_match(self, doc)

    def test_every_subscription_key_in_the_file_is_one_the_bicep_maps(self) -> None:
        for topic in real_file()["topics"]:
            for sub in topic["subscriptions"]:
                self.assertLessEqual(set(sub), MAPPED_KEYS, sub["name"])
                self.assertIn(sub["destination"]["endpointType"], {"AzureFunction", "WebHook"}, sub["name"])

    def test_subscriptions_are_created_only_when_deploy_subscriptions_is_true(self) -> None:
        for flag in (False, True):
            r = render(real_file(), deploy_subscriptions=flag)
            for rt in r.topics:
                self.assertTrue(rt.subscriptions)
                for rs in rt.subscriptions:
                    self.assertIs(rs.enabled, flag, f"{rs.name} with deploySubscriptions={flag}")

    def test_main_parameter_deploy_subscriptions_defaults_to_false(self) -> None:
        main = BicepFile.load(INFRA / "main.bicep")
        el = main.of_kind("param")["deploySubscriptions"]
        self.assertEqual(el.value.data, "false")


class DeadLettersAndRoles(unittest.TestCase):
    def test_dead_letter_containers_exist_and_only_they_are_writable_by_the_topic(self) -> None:
        for label, doc in VARIANTS.items():
            with self.subTest(variant=label):
                assert_dead_letters_granted(self, doc)

    def test_a_dead_letter_container_the_topic_cannot_write_to_is_reported(self) -> None:
        with self.assertRaisesRegex(AssertionError, "dead-letters to 'other-dead-letters' but the topic may only write"):
            assert_dead_letters_granted(self, _other_container())

    def test_the_app_may_send_events_only_to_the_orders_topic(self) -> None:
        r = render(VARIANTS["two topics"])
        for rt in r.topics:
            is_orders = rt.file_topic["name"] == "orders"
            self.assertIs(rt.data_sender_enabled, is_orders, rt.file_topic["name"])
            if is_orders:
                self.assertEqual(rt.data_sender["scope"], rt.topic)
                self.assertEqual(rt.data_sender["properties"]["principalId"], Opaque("functionApp.identity.principalId"))

    def test_orders_topic_setting_and_output_point_at_the_orders_topic(self) -> None:
        for label, doc in VARIANTS.items():
            with self.subTest(variant=label):
                r = render(doc)
                index = [t["name"] for t in doc["topics"]].index("orders")
                endpoint = Opaque(f"eventGrid[{index}].outputs.endpoint")
                self.assertEqual(r.app_settings["OrdersTopic__topicEndpointUri"], endpoint)
                self.assertEqual(r.outputs["topicEndpoint"], endpoint)
                self.assertEqual(r.topics[index].outputs["endpoint"], Opaque("eventGridTopic.properties.endpoint"))

    def test_topic_local_auth_is_off_unless_the_parameter_turns_it_on(self) -> None:
        r = render(real_file())
        for rt in r.topics:
            self.assertIs(rt.topic_properties["disableLocalAuth"], True)


class ParametersFile(unittest.TestCase):
    def test_bicepparam_uses_main_and_assigns_only_declared_parameters(self) -> None:
        text = (INFRA / "main.bicepparam").read_text()
        self.assertRegex(text, r"(?m)^using 'main\.bicep'\s*$")
        assigned = re.findall(r"(?m)^param\s+(\w+)\s*=", text)
        declared = BicepFile.load(INFRA / "main.bicep").of_kind("param")
        self.assertEqual(len(assigned), len(set(assigned)), "a parameter is assigned twice")
        self.assertLessEqual(set(assigned), set(declared), "main.bicepparam assigns parameters main.bicep lacks")
        required = {n for n, e in declared.items() if e.value is None}
        self.assertLessEqual(required, set(assigned), "main.bicepparam must assign every required parameter")
        # deploy.sh overrides these with -p name=value, which needs them assigned in the file.
        overridden = {"deploySubscriptions", "location", "appliedAppSettingsFingerprint", "deployedPackageSha256"}
        self.assertLessEqual(overridden, set(assigned))
        self.assertRegex(text, r"(?m)^param appliedAppSettingsFingerprint = ''\s*$")
        self.assertRegex(text, r"(?m)^param deployedPackageSha256 = ''\s*$")
        self.assertRegex(text, r"(?m)^param deploySubscriptions = false\s*$")
        self.assertRegex(text, r"(?m)^param topicLocalAuthEnabled = false\s*$")

    def test_smtp_password_is_secure_and_never_a_literal_in_the_parameters_file(self) -> None:
        declared = BicepFile.load(INFRA / "main.bicep").of_kind("param")
        self.assertIn("deco_secure", declared["smtpPassword"].decorators)
        text = (INFRA / "main.bicepparam").read_text()
        self.assertRegex(text, r"(?m)^param smtpPassword = readEnvironmentVariable\('ORDERGRID_SMTP_PASSWORD', ''\)\s*$")

    def test_app_setting_smtp_password_is_a_key_vault_reference(self) -> None:
        r = render(real_file())
        value = r.app_settings["ORDERGRID_SMTP_PASSWORD"]
        self.assertRegex(value, r"^@Microsoft\.KeyVault\(SecretUri=<keyVault\.properties\.vaultUri>secrets/smtp-password/\)$")


if __name__ == "__main__":
    unittest.main()
