"""Resource names fit Azure's rules and are deterministic, so a redeployment changes nothing.

A name that depended on a deployment-time value (a principal id, utcNow(), newGuid()) would
create a second resource, or fail, on the next deployment; role assignments are the usual
culprit. bicep_eval refuses utcNow/newGuid (unsupported) and returns an Opaque value for
deployment-time values, so "every name evaluates to the same plain string twice" is the check.
"""

from __future__ import annotations

import re
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_subscriptions as ts  # noqa: E402
from bicep_eval import ResourceRef, split_value  # noqa: E402

# (pattern, min length, max length) per resource type, from Azure's naming rules.
RULES = {
    "Microsoft.Storage/storageAccounts": (r"[a-z0-9]+", 3, 24),
    "Microsoft.KeyVault/vaults": (r"[a-zA-Z](?!.*--)[a-zA-Z0-9-]*[a-zA-Z0-9]", 3, 24),
    "Microsoft.Web/sites": (r"[a-zA-Z0-9](?!.*--)[a-zA-Z0-9-]*[a-zA-Z0-9]", 2, 60),
    "Microsoft.Web/serverfarms": (r"[a-zA-Z0-9-]+", 1, 60),
    "Microsoft.OperationalInsights/workspaces": (r"[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]", 4, 63),
    "Microsoft.Insights/components": (r"[^%&\\?/]+", 1, 260),
    "Microsoft.EventGrid/topics": (r"[a-zA-Z0-9-]+", 3, 50),
    # bicep-types-az webpubsub 2024-03-01: ^[a-zA-Z][a-zA-Z0-9-]{1,61}[a-zA-Z0-9]$, 3-63 characters.
    "Microsoft.SignalRService/webPubSub": (r"[a-zA-Z][a-zA-Z0-9-]{1,61}[a-zA-Z0-9]", 3, 63),
    "Microsoft.Storage/storageAccounts/blobServices/containers": (r"[a-z0-9](?!.*--)[a-z0-9-]*[a-z0-9]", 3, 63),
}

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _names(prefix: str) -> dict[tuple[str, str], str]:
    """Every resource name of main.bicep and the topic module, for namePrefix=prefix."""
    r = ts.render(ts.VARIANTS["two topics"], main_params={"namePrefix": prefix})
    out: dict[tuple[str, str], str] = {}
    for el in r.main.of_kind("resource").values():
        out[(el.resource_type, el.name)] = ResourceRef(r.scope, el).name
    for rt in r.topics:
        module = rt.module_scope.file
        for el in module.of_kind("resource").values():
            loop, _, _ = split_value(el.value)
            if loop is None:
                out[(el.resource_type, f"{rt.file_topic['name']}:{el.name}")] = ResourceRef(rt.module_scope, el).name
    return out


class Names(unittest.TestCase):
    def test_resource_names_fit_azure_rules_for_short_and_long_prefixes(self) -> None:
        for prefix in ("ordergrid", "ab", "abcdefghi", "a1b2c3d4e"):
            for (rtype, symbol), name in _names(prefix).items():
                with self.subTest(prefix=prefix, resource=symbol):
                    self.assertIsInstance(name, str, f"{symbol}: the name must be known before deployment")
                    rule = RULES.get(rtype)
                    if rule is None:
                        continue
                    pattern, lo, hi = rule
                    self.assertTrue(lo <= len(name) <= hi, f"{symbol}: {name!r} is {len(name)} characters, want {lo}-{hi}")
                    self.assertRegex(name, f"^(?:{pattern})$", f"{symbol}: {name!r}")

    def test_role_assignment_names_are_deterministic_guids(self) -> None:
        first, second = _names("ordergrid"), _names("ordergrid")
        assignments = {k: v for k, v in first.items() if k[0] == "Microsoft.Authorization/roleAssignments"}
        self.assertGreaterEqual(len(assignments), 5)
        for key, name in assignments.items():
            self.assertRegex(name, GUID, key)
            self.assertEqual(second[key], name, f"{key}: the name changed between two evaluations")
        self.assertEqual(len(set(assignments.values())), len(assignments), "two role assignments share a name")

    def test_every_name_is_the_same_on_a_second_deployment(self) -> None:
        self.assertEqual(_names("ordergrid"), _names("ordergrid"))


if __name__ == "__main__":
    unittest.main()
