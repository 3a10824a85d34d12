"""The tools' commands in one click group, as the lead registers them in ``ussd_service.cli``.

Tests run ``python tests/tools/cli_wrapper.py COMMAND ...`` as a subprocess
until the commands are wired into ``ussd-service`` itself.
"""

from __future__ import annotations

import click

from ussd_service import conversations, graph, report, simulator
from ussd_service.cli import main as service_main


def build() -> click.Group:
    """``ussd-service`` with the tools' commands added (when not already there)."""
    for command in (
        simulator.simulate,
        conversations.test_conversations,
        graph.graph,
        report.report,
    ):
        if command.name not in service_main.commands:
            service_main.add_command(command)
    return service_main


if __name__ == "__main__":
    build()()
