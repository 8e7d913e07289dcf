"""The IKEv1 exchanges, one module each, both roles' steps side by side (as strongSwan's
libcharon task files): :mod:`.aggressive` and :mod:`.main_mode` (phase 1, with what they
share in :mod:`.phase1`), :mod:`.xauth` and :mod:`.mode_config` (carried by
:mod:`.transaction`), :mod:`.quick_mode`, :mod:`.informational` (notify, delete, DPD).

A step is a function ``(engine, out, sa, message, inbound)``; which step handles which
message is the one table in :mod:`labctl.ike.transitions`.  Steps read the role's policy
(``engine.config`` / ``engine.policy``) and call its hooks (``engine._after_auth``,
``engine._session_config``...); they never do I/O.
"""
