"""The authors' published files turned into tr2's own: OpenAI's CLIP archive, the text
table, the trained TR² checkpoints (``tr2 import-release``)."""
