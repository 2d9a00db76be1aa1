"""Vercel deployments (REST API): which production deployment is live, which came before, and rolling back."""

from __future__ import annotations

import pandas as pd

from ..settings import Environment
from .http import Unreachable, request_json
from .url import segment

COLUMNS = ["id", "state", "target", "created", "ready", "commit", "message", "creator", "url", "live"]


class Vercel:
    """One Vercel project through its REST API (bearer token)."""

    def __init__(self, token: str, api_base: str = "https://api.vercel.com", project: str = "",
                 timeout_s: float = 10.0) -> None:
        self.api_base, self.project, self._token, self.timeout_s = api_base.rstrip("/"), project, token, timeout_s

    def __repr__(self) -> str:
        return f"Vercel(api_base={self.api_base!r}, project={self.project!r})"

    def _get(self, path: str, **params) -> dict:
        return request_json("GET", self.api_base + path, self._auth, self.timeout_s, params=params)[0]

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def deployments(self, limit: int = 20) -> pd.DataFrame:
        """The project's latest production deployments, newest first; `live` marks the one production serves."""
        found = self._get("/v6/deployments", projectId=self.project, target="production", limit=limit)
        project = self._get(f"/v9/projects/{segment(self.project)}")
        live = ((project.get("targets") or {}).get("production") or {}).get("id")
        rows = [{"id": d["uid"], "state": d.get("readyState") or d.get("state"), "target": d.get("target"),
                 "created": d.get("createdAt") or d.get("created"), "ready": d.get("ready"),
                 "commit": (d.get("meta") or {}).get("githubCommitSha", "")[:7],
                 "message": (d.get("meta") or {}).get("githubCommitMessage"),
                 "creator": (d.get("creator") or {}).get("username"), "url": d.get("url"), "live": d["uid"] == live}
                for d in found.get("deployments", [])]
        frame = pd.DataFrame(rows, columns=COLUMNS)
        for column in ("created", "ready"):
            frame[column] = pd.to_datetime(pd.to_numeric(frame[column]), unit="ms", utc=True)
        return frame

    def rollback(self, deployment_id: str, description: str = "") -> None:
        """Point production at deployment_id (POST /v1/projects/{project}/rollback/{id}); Unreachable if refused."""
        path = f"/v1/projects/{segment(self.project)}/rollback/{segment(deployment_id)}"
        request_json("POST", self.api_base + path, self._auth, self.timeout_s,
                     params={"description": description} if description else None)


def vercel_of(env: Environment) -> tuple[Vercel | None, str]:
    """(a Vercel client for the profile's project, "") or (None, why not: no token, url or project)."""
    token = env.secret("vercel_token")
    if token is None:
        return None, env.missing_secret_message("vercel_token")
    if not env.urls.get("vercel_api") or not env.vercel_project:
        return None, "no `vercel_api` url or `vercel_project` in the profile"
    return Vercel(token.reveal(), env.urls["vercel_api"], env.vercel_project), ""


def read(env: Environment, limit: int = 20, timeout_s: float = 10.0) -> tuple[pd.DataFrame | None, str]:
    """(the latest production deployments, "") or (None, why they could not be read); timeout_s per request."""
    vercel, problem = vercel_of(env)
    if vercel is None:
        return None, problem
    vercel.timeout_s = timeout_s
    try:
        return vercel.deployments(limit), ""
    except Unreachable as exc:
        return None, str(exc)
