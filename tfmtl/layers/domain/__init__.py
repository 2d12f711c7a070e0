"""Multi-domain layers routed by a domain id: STAR-style dense, domain-gated experts, M3oE.

Every layer takes the domain id as a second input, ``int [batch]`` in
``[0, num_domains)``. Per-domain variants are computed side by side as one
grouped einsum and each example then gathers its own domain's slice: for the
handful of domains of multi-domain recommendation that is cheaper than gathering
a weight matrix per example, and any number of domains works unchanged.

* :class:`StarDense`: STAR's star-topology layer, kernel = shared * domain-specific.
* :class:`DomainExpertMixing`: shared experts, one softmax gate per (domain, task).
* :class:`M3oEExperts`: M3oE's shared / domain / task expert modules and its
  two-level fusion, weighted by four learnable structure weights.
* :class:`DomainTaskTowers`: one tower per (domain, task), routed by domain.
"""

from tfmtl.layers.domain.m3oe import STRUCTURE_NAMES, M3oEExperts
from tfmtl.layers.domain.mixing import DomainExpertMixing
from tfmtl.layers.domain.routing import select_domain
from tfmtl.layers.domain.star import StarDense
from tfmtl.layers.domain.towers import DomainTaskTowers

__all__ = ["STRUCTURE_NAMES", "DomainExpertMixing", "DomainTaskTowers", "M3oEExperts", "StarDense", "select_domain"]
