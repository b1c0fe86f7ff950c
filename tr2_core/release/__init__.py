"""The authors' published files turned into tr2's own: their Action Genome detector,
OpenAI's CLIP archive, the text table and the trained TR² checkpoints
(``tr2 import-release``)."""
