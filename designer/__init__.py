"""Tools for menu designers, beside the service: they use ``ussd_service``, never the reverse.

``simulator`` (a phone in the terminal), ``conversations`` (the designers'
YAML conversation tests), ``graph`` (the menu tree as a picture) and
``report`` (drop-off per menu node). The ``ussd-service`` command finds their
commands through the ``ussd_service.commands`` entry-point group.
"""
