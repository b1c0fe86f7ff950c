"""The managed (lifecycle) ROS 2 node the tr2 node runs as, nav2 style.

:func:`make_lifecycle_node` builds an ``rclpy.lifecycle.LifecycleNode`` whose
transitions call a plain Python handler (:class:`LifecycleHandler`, e.g.
:class:`tr2_ros.node.Tr2Node`):

* ``configure``  -> ``handler.configure()``  (load the model),
* ``activate``   -> ``handler.activate()``   (subscribe, start the worker),
* ``deactivate`` -> ``handler.deactivate()`` (unsubscribe, stop the worker),
* ``cleanup``    -> ``handler.cleanup()``    (free the model and GPU memory),
* ``shutdown``   -> deactivate and clean up.

A :class:`~tr2_core.errors.Tr2Error` from the handler (missing checkpoint,
bad weights) is logged as one line and fails the transition, so the node
stays in its previous state and a lifecycle manager sees FAILURE. The
standard services ``<node>/change_state``, ``<node>/get_state`` etc. come
with rclpy's LifecycleNode. rclpy is imported when a node is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tr2_core.errors import Tr2Error


class LifecycleHandler(Protocol):
    """What the lifecycle node drives."""

    def configure(self) -> None: ...
    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def cleanup(self) -> None: ...


def make_lifecycle_node(name: str, handler: Callable[[], LifecycleHandler], **kwargs: Any) -> Any:
    """An ``rclpy.lifecycle.LifecycleNode`` named ``name`` driving ``handler()``.

    The node's ``transition_error`` holds the reason of the last failed
    transition (None before any failure).

    Args:
        name: node name.
        handler: returns the handler (called at each transition, so the node
            can be made before the handler is complete).
        **kwargs: passed to ``LifecycleNode`` (namespace, parameter_overrides...).
    """
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    def run(step: str, what: str) -> TransitionCallbackReturn:
        try:
            getattr(handler(), step)()
        except Exception as e:  # Tr2Error, torch, rclpy: fail the transition, keep the node
            reason = str(e) if isinstance(e, Tr2Error) else f"{type(e).__name__}: {e}"
            node.transition_error = reason
            node.get_logger().error(f"{what} failed: {reason}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    class _Tr2LifecycleNode(LifecycleNode):
        def on_configure(self, state: Any) -> TransitionCallbackReturn:
            return run("configure", "configure")

        def on_activate(self, state: Any) -> TransitionCallbackReturn:
            return run("activate", "activate")

        def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
            return run("deactivate", "deactivate")

        def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
            return run("cleanup", "cleanup")

        def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
            deactivated = run("deactivate", "shutdown")
            cleaned = run("cleanup", "shutdown")
            ok = TransitionCallbackReturn.SUCCESS
            return ok if deactivated == ok and cleaned == ok else TransitionCallbackReturn.FAILURE

        def on_error(self, state: Any) -> TransitionCallbackReturn:
            return self.on_shutdown(state)

    node = _Tr2LifecycleNode(name, **kwargs)
    node.transition_error = None  # reason of the last failed transition, for callers
    return node
