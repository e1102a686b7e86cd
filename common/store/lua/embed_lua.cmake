# Turns one Lua script into a C++ header holding it as a raw string literal, so the
# scripts stay readable .lua files and ship inside the binary. Run at build time:
#   cmake -DINPUT=<file.lua> -DOUTPUT=<file.h> -DSYMBOL=<kName> -P embed_lua.cmake
file(READ "${INPUT}" content)
set(delimiter "drainmet_lua")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )${delimiter}\"")
endif()
get_filename_component(name "${INPUT}" NAME)
set(header "// Generated from common/store/lua/${name} by embed_lua.cmake: do not edit.\n")
string(APPEND header "#pragma once\n#include <string_view>\n\n")
string(APPEND header "namespace drainmet::store::lua {\n")
string(APPEND header "inline constexpr std::string_view ${SYMBOL} = R\"${delimiter}(${content})${delimiter}\";\n")
string(APPEND header "}  // namespace drainmet::store::lua\n")
# Rewrite only on change, so an unchanged script does not trigger recompilation.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
  if(previous STREQUAL header)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${header}")
