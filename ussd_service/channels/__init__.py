"""Gateway dialects: one module per convention, each turning a request into a
``Hop`` and a ``Screen`` back into that gateway's reply."""
