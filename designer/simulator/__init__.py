"""A phone in the terminal, and the phone the conversation tests drive.

``phone`` has the one ``Phone`` that speaks any gateway dialect through the
dialect's client half; ``screens`` draws its replies; ``terminal`` reads the
keys from stdin; ``serving`` serves the app on a loopback port; ``command``
is ``ussd-service simulate``.
"""

from designer.simulator.command import SimulatorOptions, simulate, simulate_against
from designer.simulator.phone import Phone, PhoneError, Reply, ServiceClient, default_dialect
from designer.simulator.screens import render
from designer.simulator.serving import http_session, serve_app
from designer.simulator.terminal import Terminal

__all__ = [
    "Phone",
    "PhoneError",
    "Reply",
    "ServiceClient",
    "SimulatorOptions",
    "Terminal",
    "default_dialect",
    "http_session",
    "render",
    "serve_app",
    "simulate",
    "simulate_against",
]
