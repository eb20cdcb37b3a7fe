"""The conformance kit: check another implementation against the model (``refmodel conform``).

An implementation speaks the JSON-lines protocol of :mod:`refmodel.conformance.protocol` over
its stdin and stdout (any language), or is a Python object driven in-process through
:mod:`refmodel.conformance.adapter`. A *target* (:mod:`refmodel.conformance.targets`) is one
part of the model with its operations, what its specification fixes and leaves free, and its
checks; the runner (:mod:`refmodel.conformance.runner`) drives generated sequences, shrinks a
divergence to a minimal counterexample and fills a scorecard
(:mod:`refmodel.conformance.scorecard`). The protocol and the targets are documented in
``docs/conformance.md``.
"""
