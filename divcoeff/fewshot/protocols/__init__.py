"""Evaluation protocols, by ``evaluation.protocol`` (the schema's enum = these keys; a test checks it).

A protocol is one module that builds a :class:`~divcoeff.fewshot.protocols.base.Protocol` and one
line here; divcoeff.fewshot.evaluate runs the loops over PT and MAML methods for all of them.
"""
from divcoeff.fewshot.protocols import clean, published
from divcoeff.fewshot.protocols.base import Job, Protocol

PROTOCOLS: dict[str, Protocol] = {
    "clean": clean.PROTOCOL,
    "published": published.PROTOCOL,
}

__all__ = ["Job", "PROTOCOLS", "Protocol"]
