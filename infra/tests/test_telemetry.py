"""Telemetry on Azure: the host's and the handler's telemetry reach the Application Insights the
Bicep creates, by Entra ID only, and every subscription carries an event's trace context to the
host.

Issue 13: "On Azure: the Bicep and host.json send the host's and the handler's telemetry to the
Application Insights the Bicep already creates, with identity-based ingestion". The handler's
lines reach it through the host (Host.Function.Console), so what is checked is the host's
connection, its Entra authentication, the role (test_app_identity.py checks that Monitoring
Metrics Publisher is granted on the component only), host.json's sampling, and the `traceparent`
delivery property that makes an order's trace id the host's operation id. Evaluated offline with
bicep_eval over pycep's parse tree, like test_subscriptions.py.

Run: target/iac-env/venv/bin/python -m unittest discover -s infra/tests -v
"""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_app_identity as ta  # noqa: E402
import test_subscriptions as ts  # noqa: E402
import test_web_pubsub as tw  # noqa: E402
from bicep_eval import Opaque, ResourceRef  # noqa: E402

APP_INSIGHTS = "Microsoft.Insights/components"
TRACEPARENT_MAPPING = {"name": "traceparent", "type": "Dynamic", "properties": {"sourceField": "data.traceparent"}}


def assert_ingestion_is_entra_only(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    main, scope = tw._main(infra)
    component = ts._one(main.resources_of_type(APP_INSIGHTS), "Application Insights")
    props = ts._body(scope, component, "properties")
    test.assertIs(props.get("DisableLocalAuth"), True, "telemetry only with an Entra token, no instrumentation key")
    settings = ts.render(ts.real_file(), infra=infra).app_settings
    test.assertEqual(
        settings.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        Opaque(f"{component.name}.properties.ConnectionString"),
        "the host sends to this template's component",
    )
    # The system-assigned identity: no ClientId (docs: "Authorization=AAD" for system-assigned).
    test.assertEqual(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"), "Authorization=AAD")
    role = ta.app_role_assignments(infra)[ta.ROLE_MONITORING_METRICS_PUBLISHER]
    test.assertIs(role["enabled"], True)
    test.assertIsInstance(role["scope"], ResourceRef)
    test.assertEqual(role["scope"].element.name, component.name, "the role on the component the host sends to")


def assert_every_subscription_maps_the_trace_context(test: unittest.TestCase, infra: Path = ts.INFRA) -> None:
    doc = ts.real_file()
    r = ts.render(doc, infra=infra)
    for rt in r.topics:
        for sub in rt.subscriptions:
            mappings = sub.properties["destination"]["properties"].get("deliveryAttributeMappings")
            test.assertEqual(mappings, [TRACEPARENT_MAPPING], f"{sub.name} carries the event's traceparent to the host")


def check_all(test: unittest.TestCase, infra: Path) -> None:
    """Every check of this file against `infra` (test_mutations.py runs them on edited copies)."""
    assert_ingestion_is_entra_only(test, infra)
    assert_every_subscription_maps_the_trace_context(test, infra)


class TelemetryTest(unittest.TestCase):
    def test_the_host_sends_to_the_templates_application_insights_with_entra_only(self) -> None:
        assert_ingestion_is_entra_only(self)

    def test_every_subscription_maps_data_traceparent_to_the_delivery_header(self) -> None:
        assert_every_subscription_maps_the_trace_context(self)

    def test_host_json_keeps_requests_and_exceptions_out_of_sampling(self) -> None:
        host = json.loads((tw.REPO / "host.json").read_text())
        sampling = host["logging"]["applicationInsights"]["samplingSettings"]
        excluded = sampling["excludedTypes"].split(";")
        self.assertIn("Request", excluded, "every invocation's request, so every trace id is found")
        self.assertIn("Exception", excluded)


if __name__ == "__main__":
    unittest.main()
