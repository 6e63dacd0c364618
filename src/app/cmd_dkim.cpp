// app/cmd_dkim.cpp — `buzon dkim keygen` (a new key and its DNS record) and `buzon dkim sign` (an
// operator's test tool, like opendkim-testmsg): flags -> src/dkim.
//
// SECURITY  keygen creates the key file with mode 0600 and O_EXCL (an existing key is never
//           overwritten); the key itself is never printed.
#include "app/client_commands.hpp"

#include "dkim/dkim.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>

namespace buzon::app {

struct DkimCli {
  CLI::App* keygen = nullptr;
  CLI::App* sign = nullptr;
  std::string algorithm = "rsa";
  unsigned bits = 2048;
  std::string domain, selector, out, key, input = "-";
};

CLI::App* add_dkim_command(CLI::App& app, DkimCli*& out) {
  static DkimCli d;
  out = &d;
  auto* c = app.add_subcommand("dkim", "DKIM keys and signatures (RFC 6376, RFC 8463)");
  c->require_subcommand(1);
  d.keygen = c->add_subcommand("keygen", "write a new private key and print its DNS TXT record");
  d.keygen->add_option("--algorithm", d.algorithm, "rsa (default) or ed25519")->check(CLI::IsMember({"rsa", "ed25519"}));
  d.keygen->add_option("--bits", d.bits, "RSA key size (default 2048)")->check(CLI::Range(1024u, 8192u));
  d.keygen->add_option("--domain", d.domain, "the signing domain (d=)")->required();
  d.keygen->add_option("--selector", d.selector, "the selector (s=)")->required();
  d.keygen->add_option("--out", d.out, "the private key file to create (mode 0600; never overwritten)")->required();
  d.sign = c->add_subcommand("sign", "print a message with a DKIM-Signature field added (a test tool)");
  d.sign->add_option("--key", d.key, "the private key (PEM)")->required();
  d.sign->add_option("--domain", d.domain, "the signing domain (d=)")->required();
  d.sign->add_option("--selector", d.selector, "the selector (s=)")->required();
  d.sign->add_option("message", d.input, "the message file, or - for standard input (default)");
  return c;
}

namespace {

int fail(const std::string& what) {
  std::cerr << "buzon dkim: " << what << "\n";
  return 1;
}

// `sel._domainkey.example.org. IN TXT "..." "..."`: the value in strings of at most 255 octets.
std::string txt_record_line(const std::string& selector, const std::string& domain, const std::string& value) {
  std::string line = selector + "._domainkey." + domain + ". IN TXT";
  for (std::size_t i = 0; i < value.size(); i += 255) line += " \"" + value.substr(i, 255) + "\"";
  return line;
}

int keygen(const DkimCli& d) {
  auto alg = d.algorithm == "ed25519" ? dkim::Algorithm::ed25519_sha256 : dkim::Algorithm::rsa_sha256;
  auto pem = dkim::generate_key_pem(alg, d.bits);
  if (!pem) return fail(pem.error());
  auto key = dkim::Key::from_pem(*pem);
  if (!key) return fail(key.error());
  int fd = ::open(d.out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail(d.out + ": " + std::strerror(errno) +
                (errno == EEXIST ? " (fix: keep the existing key, or remove it first)" : ""));
  ::fchmod(fd, 0600);  // whatever the umask
  bool ok = ::write(fd, pem->data(), pem->size()) == static_cast<ssize_t>(pem->size());
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(d.out.c_str());
    return fail(d.out + ": cannot write the key");
  }
  std::cout << txt_record_line(d.selector, d.domain, key->dns_record()) << "\n";
  std::cerr << "wrote " << d.out << "; publish the TXT record above, then use the key in [[dkim.key]]\n";
  return 0;
}

int sign(const DkimCli& d) {
  auto key = dkim::Key::load(d.key);
  if (!key) return fail(key.error());
  std::string message;
  if (d.input == "-") {
    message.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(d.input, std::ios::binary);
    if (!in) return fail(d.input + ": cannot open the message");
    message.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto field = dkim::sign({d.domain, d.selector, *key}, message, static_cast<long long>(std::time(nullptr)));
  if (!field) return fail(field.error());
  if (message.find("\r\n") == std::string::npos) {  // a file with LF line ends: keep them
    std::string lf;
    for (char c : *field)
      if (c != '\r') lf.push_back(c);
    *field = lf;
  }
  std::cout << *field << message;
  std::cout.flush();
  return std::cout ? 0 : 1;
}

}  // namespace

int cmd_dkim(const DkimCli& d) {
  if (*d.keygen) return keygen(d);
  if (*d.sign) return sign(d);
  return 2;
}

}  // namespace buzon::app
