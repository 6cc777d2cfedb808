"""Co-design: training knobs and hardware in one sweep, with accuracy as an objective.

``load_codesign_spec(path)`` validates a spec (:mod:`accelsim.codesign.spec`);
``run_codesign(spec, out_dir)`` trains, traces, simulates and tabulates it
(:mod:`accelsim.codesign.run`). The CLI verb is ``accelsim codesign SPEC``.
"""
