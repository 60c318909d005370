"""Step Functions: deployed state machines execute, and executions survive a restart.

moto's executing backend (its ASL interpreter) was not the one CloudFormation wrote to, so CDK
machines were invisible to StartExecution; the interpreter runs an execution on a thread of its
own, so its end is journaled here (``durability``) and a replay restores it without running the
machine again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from streamline.local import durability
from streamline.local.patches.registry import install, moto_original, moto_patch


@moto_patch(
    "moto.stepfunctions.models:stepfunctions_backends",
    "moto.stepfunctions.parser.models:StepFunctionsParserBackend.start_execution",
    "moto.core.config:default_user_config",
)
def stepfunctions_execute_deployed_machines() -> None:
    """CloudFormation state machines go to the executing (ASL interpreter) backend.

    With ``execute_state_machine`` on, the API uses ``stepfunctions_parser_backends`` while
    CloudFormation writes to the module global ``stepfunctions_backends``: CDK machines were
    invisible to StartExecution and ListStateMachines. Only the module global is rebound (the
    package attribute drives URL routing). Lambda tasks call the Invoke API over HTTP at
    localhost:MOTO_PORT (set by MotoServer), which reaches our runner; a function error's
    ``errorType`` becomes the error name through the x-amz-function-error header. Also:
    StartExecution without a name gets a UUID (moto used "None", so a second call failed).
    """
    import moto.stepfunctions.models as sfn_models
    from moto.core.config import default_user_config
    from moto.stepfunctions.parser.models import (
        StepFunctionsParserBackend,
        stepfunctions_parser_backends,
    )

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    install(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
    original = moto_original(StepFunctionsParserBackend, "start_execution")

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        from moto.moto_api._internal import mock_random

        # moto's seedable random: a replayed StartExecution names the execution the same.
        name = name or str(mock_random.uuid4())
        return original(self, state_machine_arn, name, execution_input, trace_header)

    install(StepFunctionsParserBackend, "start_execution", start_execution)


@moto_patch(
    "moto.stepfunctions.parser.backend.execution:Execution.start",
    "moto.stepfunctions.parser.backend.execution:Execution.to_history_output",
    "moto.stepfunctions.parser.backend.execution:BaseExecutionWorkerCommunication.terminated",
)
def stepfunctions_executions_survive_restarts() -> None:
    """A Step Functions execution's end is journaled, and replay restores it without running it.

    The interpreter runs an execution on a thread of its own, outside any request, so its end
    is a change no API request records: it is journaled as an operation (``sfn.ended``) with its
    status, output and history. Replayed StartExecution requests create the execution but never
    run it (that would invoke functions twice); its journaled end restores how it ended, and one
    still running when the cloud died ends ABORTED (``durability``). A restored execution keeps
    its history for GetExecutionHistory.
    """
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    original_start = moto_original(Execution, "start")
    original_history = moto_original(Execution, "to_history_output")
    original_terminated = moto_original(BaseExecutionWorkerCommunication, "terminated")

    def start(self: Any) -> None:
        if durability.replaying():
            self.exec_status = ExecutionStatus.RUNNING
            return
        original_start(self)

    def to_history_output(self: Any) -> Any:
        restored = getattr(self, "restored_history", None)
        if self.exec_worker is None and restored is not None:
            return restored
        if self.exec_worker is None:
            return {"events": []}
        return original_history(self)

    def terminated(self: Any) -> None:
        original_terminated(self)
        journal = durability.ACTIVE
        if journal is None:
            return
        execution = self.execution
        with contextlib.suppress(Exception):  # journaling an end must never break the run
            journal.run(
                "sfn.ended",
                str(execution.exec_arn),
                execution.exec_status,
                execution.output,
                execution.error,
                execution.cause,
                execution.stop_date,
                original_history(execution),
            )

    install(Execution, "start", start)
    install(Execution, "to_history_output", to_history_output)
    install(BaseExecutionWorkerCommunication, "terminated", terminated)
