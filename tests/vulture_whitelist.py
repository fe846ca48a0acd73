"""Names vulture cannot see being used (``tests/test_quality.py`` runs it over the package).

Each entry is used by something outside our code: a framework reads the attribute, a protocol
calls the method, or it is data a caller reads by field. Add a name here only with that reason;
anything else vulture finds in ``agentcorp/`` is dead code to delete.
"""

# ruff: noqa

# Frameworks and the standard library read these class attributes and call these methods.
_.protocol_version  # http.server: keep-alive replies
_.wbufsize  # http.server: one buffered write per reply
_.disable_nagle_algorithm  # socketserver
_.close_connection  # http.server
_.daemon_threads  # socketserver
_.block_on_close  # socketserver
_.allow_reuse_address  # socketserver
_.PAUSE  # pyautogui module settings
_.FAILSAFE  # pyautogui module settings
_.intra_op_num_threads  # onnxruntime.SessionOptions
_.inter_op_num_threads  # onnxruntime.SessionOptions
_.log_severity_level  # onnxruntime.SessionOptions
_.enable_cpu_mem_arena  # onnxruntime.SessionOptions
_.dim_value  # onnx graph protobuf, written when fusing the OCR recogniser

# Context-manager and pytest-hook signatures fixed by their protocols.
exc_type
exitstatus

# Data read by field name (dataclass fields set by keyword, model fields read from YAML, reports).
_.steps_done  # EpisodeResult, set through dataclasses.replace
_.expires  # fleet Lease: when the holder's write right ends
_.useful_work_s  # fleet simulation report
_.wasted_work_s  # fleet simulation report
_.fused_ops  # OCR engine diagnostics: how many graph fusions applied
_.closed  # FakeComputer: tests assert the sandbox was closed
_.stdout_contains  # spec CommandCheck
_.stdout_regex  # spec CommandCheck
_.json_path  # spec HttpCheck
_.database  # spec SqliteCheck
_.not_  # spec NotCheck (YAML key "not")

# pytest plugin entry points (pyproject [project.entry-points.pytest11]).
agentcorp_record_mode
agentcorp_session
_.replay  # the agentcorp_session fixture's method, called from users' tests

# Fields the run report's Jinja2 template reads (agentcorp/record/assets/run_report.html).
_.x2  # run_report.Edge
_.y2  # run_report.Edge
_.server_version  # console server: http.server reads it for the Server header
_.sys_version  # console server: http.server reads it for the Server header

# Public API used from users' tests (the pytest plugin's fixture), not from ours.
_.record_task  # agentcorp_session.record_task(...) in a user's test

# Fields of the `dom` check read from YAML (spec models are the YAML contract).
_.equals
_.at_least
_.at_most
