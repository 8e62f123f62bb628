"""How the API reads request arguments: every endpoint's Blueprint comes from here.

* **Unknown query parameters are refused** (422 naming them), as unknown JSON members already are.
  webargs ignores them by default, so a misspelt filter (``?instance_id=`` for ``instanceId``)
  silently returned everything — the worst answer a script that acts on the result can get.
* **Names as responses spell them are accepted too.** Requests name their members and filters in
  camelCase (``businessKey``, ``instanceId``, as Camunda's REST API does) and responses in
  snake_case (``business_key``); a client may send either spelling of a name. Sending both spellings
  of one name is refused (422), never resolved by a guess.
"""

from __future__ import annotations

from collections.abc import Mapping

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict


class ArgumentsParser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": ma.RAISE, "querystring": ma.RAISE}

    def pre_load(self, location_data: Mapping, *, schema: ma.Schema, req, location: str) -> Mapping:
        """``location_data`` with response-style (snake_case) names given their request spelling."""
        if not isinstance(location_data, Mapping):  # a JSON body that is not an object: the schema says so
            return location_data
        spellings = {name: field.data_key for name, field in schema.fields.items()
                     if field.data_key and field.data_key != name and name in location_data}
        if not spellings:
            return location_data
        both = sorted(name for name, data_key in spellings.items() if data_key in location_data)
        if both:
            raise ma.ValidationError({name: [f"give either {name} or {spellings[name]}, not both"] for name in both})
        if isinstance(location_data, MultiDictProxy):
            renamed = MultiDict([(spellings.get(key, key), value) for key, value in location_data.data.items(multi=True)])
            return MultiDictProxy(renamed, schema)
        return {spellings.get(key, key): value for key, value in location_data.items()}


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint reading arguments with ``ArgumentsParser``."""

    ARGUMENTS_PARSER = ArgumentsParser()
