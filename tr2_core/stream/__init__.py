"""Online scene-graph generation: one frame in, that frame's scene graph out."""
