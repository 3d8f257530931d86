"""The ``set_chat_title`` tool: the model names the chat after its first reply.

It runs as the chatting user, so the session's owner check applies like anywhere else; it
changes only Brainhair's own title, so it needs no approval.
"""

from __future__ import annotations

from typing import Any

from hivematrix.brainhair import sessions
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.tools.base import Tool, ToolContext, ToolError
from hivematrix.common.db import Database

NAME = "set_chat_title"


def title_tool(database: Database) -> Tool:
    """The tool, bound to Brainhair's database."""

    def run(context: ToolContext, tool_input: dict[str, Any]) -> dict[str, Any]:
        try:
            with database.transaction() as db:
                session = sessions.set_title(db, context.session_id, context.user,
                                             tool_input.get("title"))
                return {"title": session.title}
        except BrainhairError as exc:
            raise ToolError(str(exc)) from None

    return Tool(
        name=NAME,
        description="Set this chat's title: 3 to 6 words saying what it is about. Call it "
                    "once, after your first reply, without asking.",
        input_schema={"type": "object", "additionalProperties": False, "required": ["title"],
                      "properties": {"title": {"type": "string", "minLength": 1,
                                               "maxLength": 80}}},
        run=run,
    )
