"""Changing endpoints: stages, aliases, tags, description, metrics, transition requests, tokens.

Each calls the Registry method a Python caller would, with ``actor=`` the token's actor: the
policy (gates, separation of duties, admins) applies exactly as in Python and the audit chain
records who called."""

from __future__ import annotations

from ..governance.requests import TransitionRequest
from ..models import ModelVersion
from .core import Call, Endpoint, Param
from .routes_read import NAME, REF, REQUEST_ID
from .schemas import (
    AliasBody,
    ApproveBody,
    CommentBody,
    DescriptionBody,
    MetricsBody,
    RequestBody,
    RollbackBody,
    TagsBody,
    TokenBody,
    TokenCreated,
    TransitionBody,
)
from .tokens import TokenInfo, check_token_name, create_token, list_tokens, revoke_token

__all__ = ["ENDPOINTS"]

ALIAS = Param("alias", "path", "the alias, e.g. champion", required=True)
TOKEN_NAME = Param("token", "path", "the token's name", required=True)


async def transition(call: Call) -> ModelVersion:
    body = await call.body(TransitionBody)
    reg = call.registry
    return await call.run(
        reg.transition, call.path("ref"), stage=body.stage, comment=body.comment, actor=call.actor, strict=body.strict
    )


async def rollback(call: Call) -> ModelVersion:
    body = await call.body(RollbackBody)
    return await call.run(call.registry.rollback, call.path("name"), body.stage, comment=body.comment, actor=call.actor)


async def set_alias(call: Call) -> ModelVersion:
    body = await call.body(AliasBody)
    return await call.run(
        call.registry.set_alias,
        call.path("name"),
        call.path("alias"),
        body.version,
        actor=call.actor,
        comment=body.comment,
    )


async def delete_alias(call: Call) -> ModelVersion:
    return await call.run(call.registry.delete_alias, call.path("name"), call.path("alias"), actor=call.actor)


async def set_tags(call: Call) -> ModelVersion:
    body = await call.body(TagsBody)
    return await call.run(
        call.registry.set_tags, call.path("ref"), body.set, actor=call.actor, remove=body.remove, comment=body.comment
    )


async def set_description(call: Call) -> ModelVersion:
    body = await call.body(DescriptionBody)
    return await call.run(
        call.registry.set_description, call.path("ref"), body.description, actor=call.actor, comment=body.comment
    )


async def log_metrics(call: Call) -> ModelVersion:
    body = await call.body(MetricsBody)
    return await call.run(
        call.registry.log_metrics,
        call.path("ref"),
        body.metrics,
        step=body.step,
        actor=call.actor,
        comment=body.comment,
    )


async def request_transition(call: Call) -> TransitionRequest:
    body = await call.body(RequestBody)
    return await call.run(
        call.registry.request_transition, call.path("ref"), body.stage, body.comment, actor=call.actor
    )


async def _request_op(call: Call, verb: str) -> TransitionRequest:
    body = await call.body(CommentBody)
    method = getattr(call.registry, verb)
    result: TransitionRequest = await call.run(method, call.path("id"), actor=call.actor, comment=body.comment)
    return result


async def approve(call: Call) -> TransitionRequest:
    body = await call.body(ApproveBody)
    request_id = call.path("id")
    envelope = None
    if body.signature is not None:  # signed by the approver's own key: check it before anything changes
        from .signed import check_client_signature

        envelope = body.signature.model_dump()
        await call.run(check_client_signature, call.registry, request_id, call.actor, envelope)
    return await call.run(call.registry.approve, request_id, actor=call.actor, comment=body.comment, signature=envelope)


async def reject(call: Call) -> TransitionRequest:
    return await _request_op(call, "reject")


async def cancel(call: Call) -> TransitionRequest:
    return await _request_op(call, "cancel")


async def complete(call: Call) -> TransitionRequest:
    return await _request_op(call, "complete")


async def get_tokens(call: Call) -> list[TokenInfo]:
    return await call.run(list_tokens, call.registry)


async def new_token(call: Call) -> TokenCreated:
    body = await call.body(TokenBody)
    info, secret = await call.run(
        create_token, call.registry, body.name, body.role, actor=body.actor, by=call.actor, comment=body.comment
    )
    call.state.tokens.invalidate()
    return TokenCreated(token=secret, info=info)


async def delete_token(call: Call) -> TokenInfo:
    name = check_token_name(call.path("token"))
    info = await call.run(revoke_token, call.registry, name, by=call.actor)
    call.state.tokens.invalidate()
    return info


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "POST",
        "/versions/{ref}/transition",
        transition,
        "Move a version to another stage (the policy's gates apply)",
        role="writer",
        body=TransitionBody,
        response=ModelVersion,
        params=(REF,),
        route="/versions/{ref:path}/transition",
    ),
    Endpoint(
        "POST",
        "/models/{name}/rollback",
        rollback,
        "Bring back the previous holder of a stage",
        role="writer",
        body=RollbackBody,
        response=ModelVersion,
        params=(NAME,),
        route="/models/{name:path}/rollback",
    ),
    Endpoint(
        "PUT",
        "/models/{name}/aliases/{alias}",
        set_alias,
        "Point an alias at a version",
        role="writer",
        body=AliasBody,
        response=ModelVersion,
        params=(NAME, ALIAS),
        route="/models/{name:path}/aliases/{alias}",
    ),
    Endpoint(
        "DELETE",
        "/models/{name}/aliases/{alias}",
        delete_alias,
        "Remove an alias; returns the version it pointed at",
        role="writer",
        response=ModelVersion,
        params=(NAME, ALIAS),
        route="/models/{name:path}/aliases/{alias}",
    ),
    Endpoint(
        "POST",
        "/versions/{ref}/tags",
        set_tags,
        "Add, change or remove tags of a version",
        role="writer",
        body=TagsBody,
        response=ModelVersion,
        params=(REF,),
        route="/versions/{ref:path}/tags",
    ),
    Endpoint(
        "PUT",
        "/versions/{ref}/description",
        set_description,
        "Change a version's description",
        role="writer",
        body=DescriptionBody,
        response=ModelVersion,
        params=(REF,),
        route="/versions/{ref:path}/description",
    ),
    Endpoint(
        "POST",
        "/versions/{ref}/metrics",
        log_metrics,
        "Log metrics measured after registration",
        role="writer",
        body=MetricsBody,
        response=ModelVersion,
        params=(REF,),
        route="/versions/{ref:path}/metrics",
    ),
    Endpoint(
        "POST",
        "/versions/{ref}/requests",
        request_transition,
        "Ask for a stage transition that the policy gates",
        role="writer",
        body=RequestBody,
        response=TransitionRequest,
        params=(REF,),
        route="/versions/{ref:path}/requests",
        status=201,
    ),
    Endpoint(
        "POST",
        "/requests/{id}/approve",
        approve,
        "Approve a pending request (separation of duties applies), optionally with a signature of the approval",
        role="approver",
        body=ApproveBody,
        response=TransitionRequest,
        params=(REQUEST_ID,),
        route="/requests/{id:path}/approve",
    ),
    Endpoint(
        "POST",
        "/requests/{id}/reject",
        reject,
        "Reject a pending request",
        role="approver",
        body=CommentBody,
        response=TransitionRequest,
        params=(REQUEST_ID,),
        route="/requests/{id:path}/reject",
    ),
    Endpoint(
        "POST",
        "/requests/{id}/cancel",
        cancel,
        "Withdraw your pending request",
        role="writer",
        body=CommentBody,
        response=TransitionRequest,
        params=(REQUEST_ID,),
        route="/requests/{id:path}/cancel",
    ),
    Endpoint(
        "POST",
        "/requests/{id}/complete",
        complete,
        "Carry out an approved request",
        role="writer",
        body=CommentBody,
        response=TransitionRequest,
        params=(REQUEST_ID,),
        route="/requests/{id:path}/complete",
    ),
    Endpoint("GET", "/tokens", get_tokens, "List API tokens (admin)", role="admin", response=list[TokenInfo]),
    Endpoint(
        "POST",
        "/tokens",
        new_token,
        "Create an API token; the secret is in this answer only (admin)",
        role="admin",
        body=TokenBody,
        response=TokenCreated,
        status=201,
    ),
    Endpoint(
        "DELETE",
        "/tokens/{token}",
        delete_token,
        "Revoke an API token (admin)",
        role="admin",
        response=TokenInfo,
        params=(TOKEN_NAME,),
    ),
]
