"""tfmtl vs DeepCTR vs torch-rechub on Census-Income: ``python -m bench.peers`` runs the protocol (see README.md)."""
