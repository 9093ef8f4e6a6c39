"""The project's studies (docs/studies.md): the CPU study (`python -m study.cpu`), the GPU study
(`python -m study.gpu`), their probes, reports and bookkeeping. Training with the plugins needs none of it."""
