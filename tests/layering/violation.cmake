# A two-module layering in which the lower module includes the higher one's header: the
# `layering_catches_violation` test expects cmake/check_layering.cmake to name it and fail.
get_filename_component(DSV4_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(DSV4_MODULES dsv4_low dsv4_high)
set(DSV4_dsv4_low_PREFIX "low")
set(DSV4_dsv4_low_DIRS low)
set(DSV4_dsv4_low_ALLOWED dsv4_low)
set(DSV4_dsv4_high_PREFIX "high")
set(DSV4_dsv4_high_DIRS high)
set(DSV4_dsv4_high_ALLOWED dsv4_high dsv4_low)
