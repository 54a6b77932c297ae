"""The subscription, role and app-settings checks fail when the Bicep drops or hard-codes a property.

Each mutation below edits a temporary copy of infra/ (never the real files) the way a careless
change would, and the checks of test_subscriptions.py, test_app_identity.py, test_web_pubsub.py and
test_telemetry.py must then fail. Several
mutations hard-code exactly today's value (maxEventsPerBatch 1, 64 KB, the retry policy, the
dead-letter container): those pass on the real file and are caught only by the edited copies of
the file (test_subscriptions.VARIANTS), which is the point of having them.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_app_identity as ta  # noqa: E402
import test_subscriptions as ts  # noqa: E402
import test_telemetry as tt  # noqa: E402
import test_web_pubsub as tw  # noqa: E402
from bicep_eval import Unsupported  # noqa: E402

MODULE = "modules/event-grid-topic.bicep"
SETTINGS = "modules/app-settings.bicep"
MAIN = "main.bicep"

# (what the mutation does, file, exact text to replace, replacement)
MUTATIONS = [
    ("drop the filter", MODULE, "    filter: sub[?'filter']\n", ""),
    ("drop the retry policy", MODULE, "    retryPolicy: sub.?retryPolicy\n", ""),
    ("drop the delivery schema", MODULE, "    eventDeliverySchema: sub.?eventDeliverySchema\n", ""),
    (
        "drop deliveryAttributeMappings",
        MODULE,
        "        deliveryAttributeMappings: sub.destination.properties.?deliveryAttributeMappings\n",
        "",
    ),
    (
        "hard-code maxEventsPerBatch to today's value",
        MODULE,
        "maxEventsPerBatch: sub.destination.properties.?maxEventsPerBatch",
        "maxEventsPerBatch: 1",
    ),
    (
        "hard-code preferredBatchSizeInKilobytes to today's value",
        MODULE,
        "preferredBatchSizeInKilobytes: sub.destination.properties.?preferredBatchSizeInKilobytes",
        "preferredBatchSizeInKilobytes: 64",
    ),
    (
        "hard-code the retry policy to today's value",
        MODULE,
        "    retryPolicy: sub.?retryPolicy\n",
        "    retryPolicy: {\n      maxDeliveryAttempts: 30\n      eventTimeToLiveInMinutes: 1440\n    }\n",
    ),
    (
        "hard-code the delivery schema to today's value",
        MODULE,
        "eventDeliverySchema: sub.?eventDeliverySchema",
        "eventDeliverySchema: 'EventGridSchema'",
    ),
    (
        "hard-code the dead-letter container to today's value",
        MODULE,
        "blobContainerName: sub.deadLetter.blobContainerName",
        "blobContainerName: 'dead-letters'",
    ),
    (
        "dead-letter every subscription",
        MODULE,
        "deadLetterWithResourceIdentity: empty(sub.?deadLetter.?blobContainerName ?? '') ? null : {",
        "deadLetterWithResourceIdentity: {",
    ),
    (
        "hard-code the function name",
        MODULE,
        "'${functionAppId}/functions/${sub.destination.properties.functionName}'",
        "'${functionAppId}/functions/OrderProcessor'",
    ),
    ("drop WebHook destinations", MODULE, "    } : sub.destination\n", "    } : null\n"),
    (
        "create subscriptions regardless of deploySubscriptions",
        MODULE,
        "[for sub in topic.subscriptions: if (deploySubscriptions) {",
        "[for sub in topic.subscriptions: if (true) {",
    ),
    ("deploy only the first topic's subscriptions", MAIN, "    topic: topic\n", "    topic: subscriptionsFile.topics[0]\n"),
    ("point destinations at another resource", MAIN, "    functionAppId: functionApp.id\n", "    functionAppId: plan.id\n"),
    (
        "dead-letter to another account",
        MODULE,
        "          resourceId: storage.id\n",
        "          resourceId: deadLetterContainer.id\n",
    ),
    (
        "grant the topic identity the whole account",
        MODULE,
        "  scope: deadLetterContainer\n",
        "  scope: storage\n",
    ),
    (
        "grant the app EventGrid Data Sender on every topic",
        MAIN,
        "    dataSenderPrincipalId: (topic.name == ordersTopicName) ? functionApp.identity.principalId : ''\n",
        "    dataSenderPrincipalId: functionApp.identity.principalId\n",
    ),
    # Issue 16: the host's Table storage role, the least-privilege set, settings written only when
    # they differ, the package hash tag kept across redeployments.
    (
        "grant the host Storage Table Data Reader instead of Contributor",
        MAIN,
        "  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'\n",
        "  storageTableDataContributor: '76199698-9eea-4c19-bc75-cec21354c6b6'\n",
    ),
    (
        "grant the Table role on the resource group",
        MAIN,
        "  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)\n  scope: storage\n",
        "  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)\n  scope: resourceGroup()\n",
    ),
    (
        "grant Storage Blob Data Owner on the Key Vault",
        MAIN,
        "  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)\n  scope: storage\n",
        "  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)\n  scope: keyVault\n",
    ),
    (
        "write the app settings on every deployment",
        SETTINGS,
        "= if (fingerprint != appliedFingerprint) {",
        "= {",
    ),
    (
        "fingerprint the app name only",
        SETTINGS,
        "var fingerprint = uniqueString(functionAppName, string(settings))",
        "var fingerprint = uniqueString(functionAppName)",
    ),
    ("leave the fingerprint out of the written set", SETTINGS, "  properties: union(settings, {", "  properties: union({}, {"),
    (
        "ignore the fingerprint the app carries",
        MAIN,
        "    appliedFingerprint: appliedAppSettingsFingerprint\n",
        "    appliedFingerprint: ''\n",
    ),
    (
        "drop the package hash tag on redeployment",
        MAIN,
        "    'ordergrid-package-sha256': deployedPackageSha256\n",
        "    'ordergrid-package-sha256': ''\n",
    ),
    # Issue 12: the live feed's Web PubSub service, hub, role and settings.
    (
        "enable Web PubSub access keys",
        MAIN,
        "    disableLocalAuth: true\n    disableAadAuth: false\n",
        "    disableLocalAuth: false\n    disableAadAuth: false\n",
    ),
    ("let anonymous clients connect to the hub", MAIN, "anonymousConnectPolicy: 'deny'", "anonymousConnectPolicy: 'allow'"),
    ("hard-code the Web PubSub SKU", MAIN, "    name: webPubSubSku\n", "    name: 'Free_F1'\n"),
    (
        "grant Web PubSub Service Reader instead of Owner",
        MAIN,
        "  webPubSubServiceOwner: '12cf5a90-567b-43ae-8102-96cf46c7d9b4'\n",
        "  webPubSubServiceOwner: 'bfb1c7d2-fb1a-466b-b2ba-aee63b92deaf'\n",
    ),
    (
        "grant the Web PubSub role on the resource group",
        MAIN,
        "  name: guid(webPubSub.id, functionApp.id, roles.webPubSubServiceOwner)\n  scope: webPubSub\n",
        "  name: guid(webPubSub.id, functionApp.id, roles.webPubSubServiceOwner)\n  scope: resourceGroup()\n",
    ),
    (
        "drop the identity-based connection setting",
        MAIN,
        "      WebPubSubConnectionString__serviceUri: 'https://${webPubSub.properties.hostName}'\n",
        "",
    ),
    (
        "hard-code the operators",
        MAIN,
        "      ORDERGRID_OPERATORS: operators\n",
        "      ORDERGRID_OPERATORS: ''\n",
    ),
    (
        "write the settings before the Web PubSub role exists",
        MAIN,
        "    appWebPubSubServiceOwner\n    webPubSubHub\n",
        "    webPubSubHub\n",
    ),
    (
        "allow Application Insights' instrumentation key",
        MAIN,
        "    DisableLocalAuth: true\n  }\n}",
        "    DisableLocalAuth: false\n  }\n}",
    ),
    (
        "drop the Entra authentication of the host's telemetry",
        MAIN,
        "      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'\n",
        "",
    ),
]


def _check_all(case: unittest.TestCase, infra: Path) -> None:
    """Every equivalence and role check of test_subscriptions.py and test_app_identity.py, against `infra`."""
    for doc in ts.MAPPING_VARIANTS.values():
        ts.assert_subscriptions_match(case, doc, infra=infra)
    for flag in (False, True):
        for rt in ts.render(ts.real_file(), deploy_subscriptions=flag, infra=infra).topics:
            for rs in rt.subscriptions:
                case.assertIs(rs.enabled, flag)
    for doc in ts.VARIANTS.values():
        ts.assert_dead_letters_granted(case, doc, infra=infra)
        for rt in ts.render(doc, infra=infra).topics:
            case.assertIs(rt.data_sender_enabled, rt.file_topic["name"] == "orders")
    ta.check_all(case, infra)
    tw.check_all(case, infra)
    tt.check_all(case, infra)


class MutationsAreDetected(unittest.TestCase):
    def test_the_unmutated_copy_passes(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            infra = self._copy(Path(tmp))
            _check_all(self, infra)

    def test_each_mutation_makes_the_checks_fail(self) -> None:
        for label, rel, old, new in MUTATIONS:
            with self.subTest(mutation=label), tempfile.TemporaryDirectory() as tmp:
                infra = self._copy(Path(tmp))
                path = infra / rel
                text = path.read_text()
                self.assertEqual(text.count(old), 1, f"mutation {label!r}: the text to replace is not in {rel} exactly once")
                path.write_text(text.replace(old, new))
                with self.assertRaises((AssertionError, Unsupported), msg=f"mutation not detected: {label}"):
                    _check_all(self, infra)

    @staticmethod
    def _copy(tmp: Path) -> Path:
        infra = tmp / "infra"
        shutil.copytree(ts.INFRA, infra, ignore=shutil.ignore_patterns("tests", "__pycache__", "README.md"))
        return infra


if __name__ == "__main__":
    unittest.main()
