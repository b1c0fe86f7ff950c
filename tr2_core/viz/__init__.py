"""Drawing scene graphs on frames (NumPy + PIL): the ROS node's debug image,
``tr2 bag --debug-image`` and ``tr2 video --overlay``.

Pictures of ``tr2 plot`` (matplotlib, PNG or SVG; they take computed data;
:mod:`~tr2_core.viz.run_plots` reads run files and evaluates for ``tr2 plot
curves|recall|fig5``, :mod:`tr2_core.cli.plot_frames` for the frame plots):
:mod:`~tr2_core.viz.figure` (output, colours),
:mod:`~tr2_core.viz.curves`, :mod:`~tr2_core.viz.recall_bars`,
:mod:`~tr2_core.viz.change_gain`, :mod:`~tr2_core.viz.scene_graph_figure`,
:mod:`~tr2_core.viz.timeline`."""
