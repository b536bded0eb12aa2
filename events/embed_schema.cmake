# Writes the schema text into a header, so the JSON parser needs no file at run time.
# cmake -DIN=qudao.fbs -DOUT=qudao_schema.h -P embed_schema.cmake
file(READ ${IN} text)
file(WRITE ${OUT} "// Generated from events/qudao.fbs by events/embed_schema.cmake. Do not edit.\n#pragma once\n"
                  "namespace qudao { inline constexpr const char* kSchemaText = R\"QDAOFBS(${text})QDAOFBS\"; }\n")
