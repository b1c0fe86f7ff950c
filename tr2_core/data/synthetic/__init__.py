"""Synthetic Action Genome: rendered videos in the exact release layout.

Real Action Genome cannot be downloaded here, so tests, demos and benchmarks
use data that is *exactly* in AG's format (``frames/VIDEO.mp4/FRAME.png``,
both pickles, the glued class files, ``frame_list.txt``) and on which learning
is possible: every relation label is **derived from the geometry that is
drawn**, and relations **change over time** at a per-video controllable rate.

Scene model (one subject per video, like AG):

* a person figure (head with a visible face direction, torso, arms, legs)
  standing, walking sideways (the whole scene drifts), sitting, lying or
  leaning, and 1-3 objects of AG classes, each class drawn with its own
  colour, shape and inner mark (:func:`class_style`);
* **attention** follows the face: a profile face (eye and nose on one side)
  looks at objects whose centre lies on that side beyond the head radius; a
  frontal face looks at nothing (``not_looking_at``); a head seen from behind
  is ``unsure`` (:func:`attention_relations`; the floor, which spans the
  frame, is never looked at);
* **spatial** relations are a function of the object box, the person box and
  the drawing order (:func:`spatial_relations`): objects drawn over the
  person are ``in_front_of``, objects the person occludes are ``behind``,
  partial horizontal overlap adds ``on_the_side_of`` (multi-label);
* **contacting** relations come from a per-class state machine whose states
  are drawn as poses: the hand on the object's edge (``touching``), the
  object in the hand (``holding``), hugged at the chest (``carrying``), at the
  mouth (``drinking_from``/``eating``), shirt/shoes on the body
  (``wearing``), the figure on a chair/sofa/bed/the floor (``sitting_on``,
  ``lying_on``, ``standing_on``), tilted with a hand on furniture
  (``leaning_on``) and so on (:data:`CONTACT_LABELS`).

Time: every video gets a *change rate* ``r`` (0 for a controllable fraction
of static videos, like the top 30 % of AG in the TR² paper's Fig. 5). A video
of ``F`` frames gets ``r (F - 1)`` event frames (stochastically rounded) at
random positions; at an event frame the person turns, an object moves (above
/ beneath / in front / behind / beside), or a contact state advances
(approach, touch, pick up, carry, drink, put down, sit, lie ...), and the
event is kept only if it changes at least one relation label (up to 30
proposals). Frames without an event keep every label but the scene still
moves (the whole scene drifts, untouched objects jitter; a jittered layout
that would change a label is replaced by the previous frame's), so
appearance changes without relation changes are present too. The measured
proportion of frames whose relations changed (:func:`change_degree`) thus
tracks ``r`` (it is lower only where an object is invisible around an
event).

Edge cases of the real data appear at controllable rates: frames without a
person box (``bbox`` with 0 rows), invisible objects (``bbox`` and relations
``None``), videos of 1-2 frames (dropped by the benchmark rules), small boxes
(short edge <= 16 px), portrait frames.

Relations that need time (:mod:`.temporal`; each at its own rate, all 0 by
default, :data:`TEMPORAL_PRESET` for ``--temporal``): occluders that hide an
object or the hands for 2-4 frames while the relation continues, motion
blur, halfway poses before a contact change labelled with the relation in
force, and the same halfway poses labelled with where the motion is heading
(picking up vs putting down).

Beside the release files, ``annotations/synthetic_meta.json`` records the
seed, the configuration (every rate), ``val_videos`` and per video the
ground truth about change (rate, measured degree, changed frames) and the
temporal effects (``halfway_frames``, ``occluded_frames`` with the panel
boxes, ``blurred_frames``); :func:`temporal_effect_frames` reads the latter
as frame-key groups for the evaluator's temporal-effects breakdown.

Validation split: AG's format knows only ``train`` and ``test`` (the
records' ``metadata.set``). A seeded subset of the training videos
(:attr:`SyntheticConfig.val_fraction`, default 0.1) is listed in the meta's
``val_videos`` (and per video ``"val": true``); their records keep
``set = 'train'``, so the AG loader reads them as training videos and a
trainer that wants honest model selection drops :func:`validation_videos`
from its training set and validates on them.

Modules (each one job, lowest first): :mod:`.generator_config` (parameters),
:mod:`.state` (symbolic scene state and its events), :mod:`.geometry`
(stage and per-frame geometry types), :mod:`.poses` (the person figure),
:mod:`.layout` (state -> drawn geometry), :mod:`.labels` (relations from the
geometry, change measures), :mod:`.render` (pixels), :mod:`.video_generator` (one
video's timeline and records), :mod:`.temporal` (halfway poses, occlusion,
blur), :mod:`.writer` (the release on disk), :mod:`.meta` (reading the meta file).
"""

from tr2_core.data.synthetic.generator_config import (
    META_FILE,
    TEMPORAL_PRESET,
    SyntheticConfig,
    SyntheticSummary,
    temporal_config,
)
from tr2_core.data.synthetic.labels import (
    attention_relations,
    change_degree,
    relation_changes,
    spatial_relations,
)
from tr2_core.data.synthetic.meta import TEMPORAL_EFFECTS, temporal_effect_frames
from tr2_core.data.synthetic.render import class_style
from tr2_core.data.synthetic.state import (
    CONTACT_LABELS,
    FACING_BACK,
    FACING_FRONT,
    FACING_LEFT,
    FACING_RIGHT,
)
from tr2_core.data.synthetic.writer import make_synthetic, validation_videos

__all__ = [
    "CONTACT_LABELS",
    "FACING_BACK",
    "FACING_FRONT",
    "FACING_LEFT",
    "FACING_RIGHT",
    "META_FILE",
    "TEMPORAL_EFFECTS",
    "TEMPORAL_PRESET",
    "SyntheticConfig",
    "SyntheticSummary",
    "attention_relations",
    "change_degree",
    "class_style",
    "make_synthetic",
    "relation_changes",
    "spatial_relations",
    "temporal_config",
    "temporal_effect_frames",
    "validation_videos",
]
