"""The Function App's identity gets exactly its least-privilege roles, and a redeployment with
nothing changed writes neither its app settings nor its package tag differently.

Issue 16: "The missing role for the host's Table storage diagnostics, with the rest of the
least-privilege set" and "settings are written only when they differ". Evaluated offline with
bicep_eval over pycep's parse tree, like test_subscriptions.py; uniqueString and guid are
stand-ins with the right shape, so what is checked is which inputs a fingerprint or a name is
computed from, not the exact strings ARM would produce.

Run: target/iac-env/venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_subscriptions as ts  # noqa: E402
from bicep_eval import BicepFile, Opaque, ResourceRef, Scope, split_value  # noqa: E402

ROLE_STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
ROLE_MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
ROLE_KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
# Web PubSub Service Owner (dataActions Microsoft.SignalRService/WebPubSub/*): the least built-in role
# that can both send to groups and make client tokens with :generateToken; see main.bicep and
# test_web_pubsub.py.
ROLE_WEB_PUBSUB_SERVICE_OWNER = "12cf5a90-567b-43ae-8102-96cf46c7d9b4"

# role definition id -> the resource type of the one scope it is granted on (in main.bicep). The
# EventGrid Data Sender role on the orders topic lives in the topic module and is checked by
# test_subscriptions.py (test_the_app_may_send_events_only_to_the_orders_topic).
APP_ROLES = {
    ROLE_STORAGE_BLOB_DATA_OWNER: "Microsoft.Storage/storageAccounts",
    ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR: "Microsoft.Storage/storageAccounts",
    ROLE_MONITORING_METRICS_PUBLISHER: "Microsoft.Insights/components",
    ROLE_KEY_VAULT_SECRETS_USER: "Microsoft.KeyVault/vaults",
    ROLE_WEB_PUBSUB_SERVICE_OWNER: "Microsoft.SignalRService/webPubSub",
}

APP_PRINCIPAL = Opaque("functionApp.identity.principalId")
FINGERPRINT_SETTING = "ORDERGRID_APP_SETTINGS_FINGERPRINT"
PACKAGE_TAG = "ordergrid-package-sha256"


def _main_scope(infra: Path, params: dict[str, Any] | None = None) -> tuple[BicepFile, Scope]:
    main = BicepFile.load(infra / "main.bicep")
    return main, Scope(main, {**ts.MAIN_PARAMS, **(params or {})})


def app_role_assignments(infra: Path = ts.INFRA) -> dict[str, dict[str, Any]]:
    """role definition id -> {scope, properties, enabled} of every role assignment in main.bicep."""
    main, scope = _main_scope(infra)
    out: dict[str, dict[str, Any]] = {}
    for ra in main.resources_of_type("Microsoft.Authorization/roleAssignments"):
        _, cond, _ = split_value(ra.value)
        props = ts._body(scope, ra, "properties")
        role = props["roleDefinitionId"].rsplit("/", 1)[1]
        assert role not in out, f"role {role} is assigned twice in main.bicep"
        out[role] = {
            "scope": ts._body(scope, ra, "scope"),
            "properties": props,
            "enabled": True if cond is None else scope.eval(cond),
        }
    return out


def assert_app_roles_are_least_privilege(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    """Exactly the documented roles, each on its one resource, for the app's system identity."""
    got = app_role_assignments(infra)
    test.assertEqual(set(got), set(APP_ROLES), "the roles main.bicep grants (role definition ids)")
    for role, resource_type in APP_ROLES.items():
        ra = got[role]
        where = f"role {role}"
        test.assertIs(ra["enabled"], True, f"{where} must always be assigned")
        test.assertIsInstance(ra["scope"], ResourceRef, f"{where}: scope must be a resource of this template")
        test.assertEqual(ra["scope"].element.resource_type, resource_type, f"{where}: scope")
        test.assertFalse(ra["scope"].element.existing, f"{where}: scope must be a resource main.bicep creates")
        test.assertEqual(ra["properties"]["principalId"], APP_PRINCIPAL, f"{where}: principal")
        test.assertEqual(ra["properties"]["principalType"], "ServicePrincipal", where)


# --- the app settings module ------------------------------------------------------------------


class RenderedSettings:
    """modules/app-settings.bicep, evaluated with the parameters main.bicep passes it."""

    def __init__(self, infra: Path, main_params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None):
        r = ts.render(ts.real_file(), infra=infra, main_params=main_params)
        params = dict(r.app_settings_params)
        if settings is not None:
            params["settings"] = settings
        self.main_params = r.app_settings_params
        self.outputs = r.outputs
        module = BicepFile.load(infra / ts.APP_SETTINGS_MODULE)
        self.scope = Scope(module, params)
        config = ts._one(module.resources_of_type("Microsoft.Web/sites/config"), "Microsoft.Web/sites/config")
        _, self.condition, _ = split_value(config.value)
        self.name = ts._body(self.scope, config, "name")
        self.parent = ts._body(self.scope, config, "parent")
        self.properties = ts._body(self.scope, config, "properties")
        self.module_outputs = {n: self.scope.eval(e.value) for n, e in module.of_kind("output").items()}

    @property
    def written(self) -> bool:
        assert self.condition is not None, "the appsettings write must be conditional (written only when it differs)"
        return self.scope.eval(self.condition)

    @property
    def fingerprint(self) -> Any:
        return self.module_outputs["fingerprint"]


def assert_settings_written_only_when_they_differ(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    first = RenderedSettings(infra)
    test.assertEqual(first.main_params["appliedFingerprint"], "", "main must pass appliedAppSettingsFingerprint (default '')")
    test.assertEqual(first.name, "appsettings")
    test.assertIsInstance(first.parent, ResourceRef)
    test.assertEqual(first.parent.element.resource_type, "Microsoft.Web/sites")
    test.assertIs(first.written, True, "an app without the fingerprint setting must get its settings")
    test.assertIs(first.module_outputs["written"], True)
    fingerprint = first.fingerprint
    test.assertIsInstance(fingerprint, str)
    test.assertTrue(fingerprint, "the fingerprint must not be empty")
    test.assertEqual(
        first.properties,
        {**first.main_params["settings"], FINGERPRINT_SETTING: fingerprint},
        "the written set is the declared settings plus their own fingerprint, nothing else",
    )

    again = RenderedSettings(infra, main_params={"appliedAppSettingsFingerprint": fingerprint})
    test.assertEqual(again.main_params["appliedFingerprint"], fingerprint, "main must pass the applied fingerprint through")
    test.assertIs(again.written, False, "the same settings must not be written again")
    test.assertIs(again.module_outputs["written"], False)
    test.assertEqual(again.fingerprint, fingerprint, "the fingerprint must not depend on the applied one")

    stale = RenderedSettings(infra, main_params={"appliedAppSettingsFingerprint": "somethingelse"})
    test.assertIs(stale.written, True, "another fingerprint on the app must get the settings written")

    # Every setting, name and value, counts: change each in turn.
    declared = first.main_params["settings"]
    for key in declared:
        for label, edited in (
            ("value", {**declared, key: f"{declared[key]}-changed"}),
            ("removed", {k: v for k, v in declared.items() if k != key}),
        ):
            changed = RenderedSettings(infra, main_params={"appliedAppSettingsFingerprint": fingerprint}, settings=edited)
            test.assertNotEqual(changed.fingerprint, fingerprint, f"{key} {label}: the fingerprint must change")
            test.assertIs(changed.written, True, f"{key} {label}: the settings must be written")
    added = RenderedSettings(
        infra, main_params={"appliedAppSettingsFingerprint": fingerprint}, settings={**declared, "NEW_SETTING": "x"}
    )
    test.assertIs(added.written, True, "a new setting must get the settings written")

    test.assertEqual(first.outputs["appSettingsFingerprint"], Opaque("appSettings.outputs.fingerprint"))


def assert_package_tag_is_carried(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    sha = "ab" * 32
    for value, tags in (("", {}), (sha, {PACKAGE_TAG: sha})):
        main, scope = _main_scope(infra, {"deployedPackageSha256": value})
        app = ts._one(main.resources_of_type("Microsoft.Web/sites"), "Function App")
        test.assertEqual(ts._body(scope, app, "tags"), tags, f"Function App tags for deployedPackageSha256={value!r}")


class AppIdentityRoles(unittest.TestCase):
    def test_the_app_identity_has_exactly_the_least_privilege_roles(self) -> None:
        assert_app_roles_are_least_privilege(self)

    def test_issue_16_the_host_may_write_its_diagnostic_events_to_table_storage(self) -> None:
        ra = app_role_assignments()[ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR]
        self.assertEqual(ra["scope"].element.resource_type, "Microsoft.Storage/storageAccounts")
        settings = ts.render(ts.real_file()).app_settings
        self.assertEqual(settings["AzureWebJobsStorage__accountName"], ra["scope"].name, "the role must be on the host storage account")


class AppSettingsAreWrittenOnlyWhenTheyDiffer(unittest.TestCase):
    def test_issue_16_settings_are_written_once_and_not_again_when_unchanged(self) -> None:
        assert_settings_written_only_when_they_differ(self)

    def test_issue_16_the_package_hash_tag_survives_a_redeployment(self) -> None:
        assert_package_tag_is_carried(self)


def check_all(test: unittest.TestCase, infra: Path) -> None:
    """Every check of this file, against `infra` (test_mutations.py runs them on edited copies)."""
    assert_app_roles_are_least_privilege(test, infra)
    assert_settings_written_only_when_they_differ(test, infra)
    assert_package_tag_is_carried(test, infra)


if __name__ == "__main__":
    unittest.main()
