"""`python manage.py verify_evidence <bundle.zip>`: check an evidence bundle.

Every file against SHA256SUMS and MANIFEST.json, and the manifest's signature against this
deployment's SECRET_KEY (and SECRET_KEY_FALLBACKS). A valid signature proves the bundle was
made by a qflowui holding that key, unchanged since; it is an HMAC, not a public-key
signature, so only someone holding the key can check it (and could forge it).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from qflowui.executions.evidence_bundle import bundle_verify


class Command(BaseCommand):
    help = "Check an evidence bundle's SHA-256 sums, manifest and signature: OK, or what differs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("bundle", help="the evidence-<id>.zip to check")

    def handle(self, *args: object, **options: object) -> None:
        result = bundle_verify(str(options["bundle"]))
        if not result.ok:
            for problem in result.problems:
                self.stdout.write(f"FAILED {problem}")
            raise CommandError(f"the bundle does not verify: {len(result.problems)} problem(s)")
        self.stdout.write(
            f"OK {result.files} files match SHA256SUMS and MANIFEST.json; the signature is "
            f"valid for this deployment's {result.signature_key}"
        )
