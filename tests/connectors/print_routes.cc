// Prints the query API's routes (api_routes()), one "METHOD PATH" a line, for the openapi test
// (tests/connectors/openapi_check.py), which compares them with connectors/openapi.yaml's paths.
#include <cstdio>

#include "connectors/query_api.h"

int main() {
  for (const qudao::ApiRoute& r : qudao::api_routes()) {
    std::printf("%.*s %.*s\n", static_cast<int>(r.method.size()), r.method.data(), static_cast<int>(r.path.size()),
                r.path.data());
  }
  return 0;
}
