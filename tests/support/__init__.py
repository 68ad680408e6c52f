"""What the test tiers share: harnesses, stand-ins for AWS and readers of output, imported as `support.*`.

pytest puts tests/ on sys.path (pyproject's `pythonpath`); conftests hold only fixtures, so that no test
imports a module named `conftest`, which every tier has.
"""
