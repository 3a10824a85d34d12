"""The service: the only package that speaks HTTP and wires menus, sessions and ledger.

Rooms, from the edge inward:

* ``channels/`` — one module per gateway dialect (parse, render, OpenAPI, and
  a client half for tools and tests); ``gateways`` serves them all with one
  handler.
* ``dialogue`` (one hop of a USSD or voice session) and ``sms_desk`` (one SMS
  to 4555) — the two cores; ``menu_operations`` links a menu's operation names
  to ledger functions, ``operations`` binds them for one hop, ``handoffs``
  records callers passed to an operator.
* ``api`` (operator and admin ``/v1``), ``notifier`` (SMS notifications from
  the ledger's outbox), ``health``, ``openapi``, ``metrics``.
* ``app`` builds the aiohttp application; ``backends`` is the composition
  root every command opens Redis and PostgreSQL through (``embedded`` starts
  local servers when no URLs are set); ``cli`` is the ``ussd-service``
  command; ``config`` and ``logs`` are settings and structured logging.

Dependencies point down: this package imports ``menus``, ``session_store``
and ``ledger``; none of them imports it, and it never imports ``designer``.
"""
