# packaging/package.cmake — `make install PREFIX=...` and `make deb` (CPack DEB generator).
# Included from the top CMakeLists.txt. Paths are decided at install time, so one build tree can be
# installed under any prefix and packaged:
#   prefix /usr (the .deb)  -> /usr/bin/buzon, /etc/buzon/buzon.toml, /lib/systemd/system/buzon.{service,socket},
#                              state in /var/lib/buzon
#   any other prefix P      -> P/bin/buzon, P/etc/buzon/buzon.toml, P/lib/systemd/system/..., state in P/var/lib/buzon
# The units' ExecStart and the config's paths are rewritten to match. An existing config is never
# overwritten by `make install` (the new one is put beside it as buzon.toml.dist); the .deb marks it
# a conffile (packaging/debian/conffiles), so dpkg keeps a changed config on upgrade.
include(GNUInstallDirs)

install(TARGETS buzon RUNTIME DESTINATION bin)
configure_file(${CMAKE_CURRENT_LIST_DIR}/install_extra.cmake.in ${CMAKE_BINARY_DIR}/packaging/install_extra.cmake @ONLY)
install(SCRIPT ${CMAKE_BINARY_DIR}/packaging/install_extra.cmake)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME buzon)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "buzon")
set(CPACK_PACKAGE_CONTACT "buzon maintainers <postmaster@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mail server: POP3 over Maildir with Dovecot-compatible users")
set(CPACK_PACKAGE_DESCRIPTION "buzon is one binary that serves the path of a message: POP3 (RFC 1939/2449)
 over Maildir mailboxes and a Dovecot-compatible passwd-file, with TLS, metrics for Prometheus,
 systemd socket activation and the PROXY protocol.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  
set(CPACK_SET_DESTDIR ON)  # absolute destinations (/etc, /lib/systemd) land in the package, not on this machine
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
